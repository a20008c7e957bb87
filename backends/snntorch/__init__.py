"""The snnTorch backend: the four task networks built from ``snn.Leaky`` /
``snn.Synaptic`` and ``snntorch.surrogate`` on PyTorch.

The registry loads :class:`backends.snntorch.backend.SnnTorchBackend`; nothing
is imported here, so listing backends never imports PyTorch or snnTorch.
"""
