"""The ``sinabs`` backend: Sinabs layers (LIF, ExpLeak) in the shared PyTorch networks."""
