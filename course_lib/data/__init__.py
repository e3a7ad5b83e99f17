"""Data the course generates or ships (nothing is downloaded at run time).

    dates   chapter 1 and 7: human-written dates -> ISO dates, characters as tokens
    (more modules are added by the chapters that need them)
"""
