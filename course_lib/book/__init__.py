"""The book's build: everything only ``jupyter-book build`` uses. A learner's ``import course_lib`` imports none of it.

    sphinxext   the Sphinx extension named in _config.yml: stages the JavaScript, links the
                inline copies, adds the explorers' scripts, publishes the demos' models
    build_log   the extension that prints when each chapter starts and how long it took
    assets      copies MathJax, require.js, the widget manager, Vega and ONNX Runtime Web from
                node_modules/ into the site (the catalogue itself is ``course_lib.assets``)
    demos       the chapters' trained models exported to ONNX, and the in-page demos that run them
    web/        the demos' JavaScript and CSS
    launch      points the Colab/Binder buttons and install cells at a repository
    timing      reads the chapters' execution times from the build's cache
"""
