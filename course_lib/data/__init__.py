"""Data the course generates or ships (nothing is downloaded at run time).

    dates   chapter 1 and 7: human-written dates -> ISO dates, characters as tokens
    synthetic  chapters 4-6: toy tasks (previous/matching-token lookups), a tiny corpus
    corpus  chapter 8: a generated English corpus for masked language modelling
"""
