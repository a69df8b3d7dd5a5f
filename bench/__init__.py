"""The speed benchmark of the shared module (``make bench``), one module per section.

``bench.common`` holds what every section shares (the measurement table and its line
format, side-by-side timing, the float64 baseline, config reading); ``bench.sections.*``
one section each; ``bench.cli`` the command line, run as ``python -m bench`` or
``python bench/benchmark.py`` (``make bench``), with ``PYTHONPATH=workflow/scripts``.
The scripts ``bench/ascent.py``, ``bench/ascent_verdicts.py`` and ``bench/kernel_job.py``
stand alone.
"""
