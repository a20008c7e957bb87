"""Our own STBP/tdBN backend in plain PyTorch, written straight from the equations.

The registry loads :class:`backends.stbp.backend.STBPBackend`; nothing is
imported here, so listing backends never imports PyTorch.
"""
