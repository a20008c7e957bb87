"""The SpikingJelly 2.x backend (``spikingjelly`` and its ``spikingjelly:torch`` variant).

The registry loads :mod:`backends.spikingjelly.backend`; nothing is imported
here, so listing backends never imports SpikingJelly or PyTorch.
"""
