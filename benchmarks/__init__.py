"""spikebench's airspeed-velocity (asv) suites.

Every suite is parameterised by backend x task x T. Frameworks are imported in
``setup`` only (through the backend registry), and a backend that is not
available raises ``NotImplementedError`` there, which asv shows as n/a.

``SPIKEBENCH_ASV_SIZE=small`` selects tiny CPU shapes so that
``asv run --python=same --quick`` finishes in a few minutes on a CI machine;
the default, ``full``, is the real task sizes on a CUDA device.
"""
