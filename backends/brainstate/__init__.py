"""The ``brainstate`` backend: brainstate + brainpy.state + braintools on JAX.

The registry loads :class:`backends.brainstate.backend.BrainstateBackend`;
nothing is imported here, so listing backends never imports JAX.
"""
