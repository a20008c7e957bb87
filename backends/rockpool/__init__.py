"""The Rockpool backend: synthetic's network built from Rockpool's Torch modules
(``LIFTorch`` with its own synaptic current, ``ExpSynTorch``) on PyTorch.

The registry loads :class:`backends.rockpool.backend.RockpoolBackend`; nothing
is imported here, so listing backends never imports PyTorch or Rockpool.
"""
