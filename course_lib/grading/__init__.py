"""Grading: nbgrader-format assignments graded outside the learner's kernel.

``release``   - exercises/ from solutions/ (nbgrader generate_assignment); ``make exercises``
``recorder``  - saves check outputs from inside the kernel (only when grading)
``notebooks`` - reads sources and submissions, detects tampering, builds what runs
``kernel``    - the limited IPython kernel a submission runs in
``runner``    - the worker process: executes one notebook with nbclient
``grader``    - verdicts outside the kernel, the gradebook, parallel runs
``feedback``  - per-student HTML with hidden tests removed
The command line is ``course`` (``course_lib.cli``); see chapters/grading_guide.md.
"""

import sys as _sys

# jsonschema (imported by nbformat) loads rfc3987_syntax, whose grammar takes seconds to
# build, only to validate "iri" string formats, which notebooks never use. Every grading
# worker imports nbformat, so skip it: jsonschema treats the module as not installed.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)
