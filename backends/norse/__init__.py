"""The ``norse`` backend: the shared PyTorch networks built from Norse's LIFBox cells."""
