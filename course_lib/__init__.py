"""course_lib: the implementations, data and checks behind the attention course.

Organised by concept, not by chapter, in rooms that import downwards only
(tests/test_package_layout.py holds them to it):

    base        files (atomic writes), runtime (building_book), assets (the npm libraries'
                catalogue), extras (optional packages), source (show_source), data/
    concepts    attention, masks, positional, seq2seq, transformer, bert, train,
                tokenization, demo_inputs, plotting, viz (bertviz, offline), explorers
    models      toy_models, pretrain (trained on the concepts)
    checks/     instant feedback for the exercises (one check_<part> each)
    grading/    the grader: sandboxed runs, the gradebook, feedback pages
    cli         the `course` command
    book/       beside them: only the book's build (Sphinx extension, assets, the in-page
                demos, build log, launch buttons). `import course_lib` never loads it.

Where each chapter's code lives:

    ch. 1 seq2seq and attention   data.dates, seq2seq, attention (score functions)
    ch. 2 query, key, value       attention
    ch. 3 scaled dot-product      attention.scaled_dot_product_attention
    ch. 4 multi-head attention    attention.MultiHeadAttention, split_heads, merge_heads,
                                  data.synthetic, toy_models
    ch. 5 positional encoding     positional (table checker, mistake catalogue)
    ch. 6 masking                 masks, toy_models
    ch. 7 the Transformer         transformer, train
    ch. 8 BERT                    bert, pretrain, tokenization, data.corpus

Dimension legend used throughout: B batch, T query length, S key length,
C d_model, H heads, D head dim, V vocabulary size.
Boolean masks: True = may attend (see ``course_lib.masks``).
"""

__version__ = "0.1.0"
