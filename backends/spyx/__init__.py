"""The ``spyx`` backend: Spyx 1.0 (Flax NNX) on JAX, with optax's Adam.

The registry loads :class:`backends.spyx.backend.SpyxBackend`; nothing is
imported here, so listing backends never imports JAX.
"""
