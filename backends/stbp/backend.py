"""The ``stbp`` backend: the shared PyTorch networks built from our readable blocks."""

from __future__ import annotations

from torch import nn

from ..base import Capabilities
from ..torch_common import CUDA_GRAPHS_MODE, TorchBackend, compiled_variant
from ..torch_networks import build_network
from .networks import CLEAR


class STBPBackend(TorchBackend):
    framework = "stbp"

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                "neuron:synthetic": "custom: soft-reset LIF with exponential synapses (PyTorch loop over T)",
                "neuron:fc_mnist": "custom: leaky neuron, subtractive reset without gradient",
                "neuron:fc_mnist_poisson": "custom: LIF with decaying input, hard reset to 0 (also lif_layer)",
                "neuron:dsrn_tdbn": "custom: STBP neuron, multiplicative reset",
                "surrogates": "custom autograd Functions: rectangular, arctangent, sigmoid, triangle (ReLU-shaped)",
                "tdbn": "custom: statistics over (T, B, H, W), running statistics with unbiased variance",
                "time": "linear layers, convolutions and tdBN fold T into the batch",
            },
            notes="The readable reference implementation; runs everywhere PyTorch runs.",
        )

    def build_model(self) -> nn.Module:
        return build_network(self.spec, CLEAR)


# ``stbp:compile``: the same steps under torch.compile
STBPCompiledBackend = compiled_variant(STBPBackend)
STBPCudaGraphsBackend = compiled_variant(STBPBackend, mode=CUDA_GRAPHS_MODE, variant="cudagraphs")
