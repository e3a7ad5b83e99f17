"""Grading: nbgrader-format assignments graded outside the learner's kernel.

``release``   - exercises/ from solutions/ (nbgrader generate_assignment); ``make exercises``
``recorder``  - saves check outputs from inside the kernel (only when grading)
``notebooks`` - reads sources and submissions, detects tampering, builds what runs
``kernel``    - the limited IPython kernel a submission runs in (checks only record there)
``runner``    - the worker process: executes one notebook with nbclient
``sandbox``   - the bubblewrap sandbox runner and kernel run in (one per notebook)
``libview``   - the sandbox's course_lib: the assignment's references and every verify() withheld
``ownwork``   - a static reading of answer cells: references, answer keys, check machinery
``grader``    - verdicts outside the sandbox, the gradebook, parallel runs
``feedback``  - per-student HTML with hidden tests removed
``report``    - the class report: the checks' named mistakes over the class, parts most often lost
The command line is ``course`` (``course_lib.cli``); see chapters/grading_guide.md (threat model).
"""

import sys as _sys

# jsonschema (imported by nbformat) loads rfc3987_syntax, whose grammar takes seconds to
# build, only to validate "iri" string formats, which notebooks never use. Every grading
# worker imports nbformat, so skip it: jsonschema treats the module as not installed.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)
