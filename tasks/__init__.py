"""spikebench's framework-neutral side: task specs, data, initial weights, the
float64 reference, metrics, result records and the command line.

Nothing in this package imports a deep-learning framework.
"""

__version__ = "0.1.0"
