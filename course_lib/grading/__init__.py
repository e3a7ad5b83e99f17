"""Grading: nbgrader-format assignments graded outside the learner's kernel.

``recorder``  - saves check outputs from inside the kernel (only when grading)
"""
