"""spikebench's HTML comparison report.

``python -m reports.build RESULTS_DIR [-o report.html]`` reads the result
records written by ``tasks.run``, ``tasks.measure`` and ``tasks.sweep`` (and a
``tasks.parity --json`` file) and writes one self-contained page: tables per
task and setting, plotly figures, the parity matrix.  Only the standard
library, numpy, pandas, jinja2, plotly and :mod:`tasks` are imported here,
never a deep-learning framework.
"""
