"""spikebench's airspeed-velocity (asv) suites.

They measure the points of one of the suite's profiles (``tasks/profiles.toml``,
chosen in ``benchmarks/config.py``): ``SPIKEBENCH_ASV_PROFILE=smoke`` is what
CI runs with ``--quick``; unset, ``cpu`` without a GPU and ``gpu`` with one.
Frameworks are imported in ``setup`` only (through the backend registry); a
backend that is not available raises ``NotImplementedError`` there, which asv
shows as n/a, while one that fails (error, out of memory) fails visibly.
"""
