"""The ``snntorch`` backend: the shared PyTorch networks built from snnTorch
neurons and surrogates (:mod:`backends.snntorch.blocks`), driven by the shared
PyTorch machinery."""

from __future__ import annotations

import snntorch
from torch import nn


from ..base import Capabilities
from ..torch_common import CUDA_GRAPHS_MODE, TorchBackend, compiled_variant
from ..torch_networks import build_network
from .blocks import SnnTorchBlocks


class SnnTorchBackend(TorchBackend):
    framework = "snntorch"

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        return {"snntorch": snntorch.__version__}

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                "neuron:synthetic": (
                    "library: snn.Synaptic(alpha=a_s, beta=a_m, reset_mechanism='subtract', reset_delay=False) "
                    "fed (1 - a_m)(W1 x + b1); custom: its mem_reset() returns 0 (subclass), because snnTorch's "
                    "double-reset guard would subtract a second V_th at the step after a spike with V > 2 V_th"
                ),
                "readout:synthetic": (
                    "library: snn.Leaky(beta=a_s, reset_mechanism='none', surrogate_disable=True) as the "
                    "non-spiking readout synapse O[t] = a_s O[t-1] + W2 S[t] + b2 (its membrane)"
                ),
                "neuron:fc_mnist": (
                    "library: snn.Leaky(beta=0.95) as in snnTorch tutorial 5 (subtractive reset from the "
                    "previous step, detached: reset_delay=True)"
                ),
                "neuron:fc_mnist_poisson": (
                    "library: snn.Leaky(beta=1 - 1/tau, reset_mechanism='zero', reset_delay=False) fed X / tau "
                    "(H = V + (X - V)/tau; V = H (1 - S) with S's gradient)"
                ),
                "neuron:lif_layer": (
                    "library: snn.Leaky(beta=1 - 1/tau = 0.5, reset_mechanism='zero', reset_delay=False) fed "
                    "X / tau, as fc_mnist_poisson's neuron (one layer after a bias-free Linear(N, N))"
                ),
                "neuron:dsrn_tdbn": (
                    "library: snn.Leaky(beta=0.25, threshold=0.4, reset_mechanism='zero', reset_delay=False) "
                    "(U[t] = tau U[t-1] (1 - S[t-1]) + X[t], reset not detached)"
                ),
                "surrogate:synthetic": (
                    "custom: surrogate.custom_surrogate with h(x) = 0.3 max(0, 1 - |x|), x = (V - V_th)/V_th, "
                    "because snnTorch's triangular() is a different function"
                ),
                "surrogate:fc_mnist": (
                    "library: surrogate.ATan with alpha=2 (forward and backward snnTorch's; spikes returned in the "
                    "input's dtype, see 'spike dtype')"
                ),
                "surrogate:fc_mnist_poisson": (
                    "custom: subclass of surrogate.Sigmoid (slope=4, forward snnTorch's) whose backward is "
                    "4 sigmoid(4x) sigmoid(-4x), the same function, because snnTorch's "
                    "4 e^(-4x) / (e^(-4x) + 1)^2 is inf/inf = NaN in float32 for x < -22, a membrane this "
                    "task's hidden neurons reach in training (the NaN gradient then poisons their weights; "
                    "tests/test_backend_snntorch.py pins both formulas)"
                ),
                "surrogate:lif_layer": (
                    "custom: the overflow-free subclass of surrogate.Sigmoid (slope=4) of fc_mnist_poisson"
                ),
                "surrogate:dsrn_tdbn": (
                    "custom: surrogate.custom_surrogate with the rectangular window 1/(2a), |U - c| < a, "
                    "c = V_th or 0 (--surrogate-center), because snnTorch has no rectangular surrogate"
                ),
                "tdbn": (
                    "custom: the shared FoldedTdBN of backends/torch_networks.py, torch batch_norm on the "
                    "time-folded [T*B, C, H, W] tensor with weight lambda * alpha * V_th (snnTorch has no tdBN; "
                    "its BatchNormTT2d normalises each step separately, which is not tdBN); the stem's static "
                    "image is convolved and normalised once and fed to its neuron at every step"
                ),
                "time": (
                    "linear layers, convolutions and tdBN fold T into the batch (a static input is "
                    "projected once); each snnTorch neuron steps through T in a Python loop, layer by layer "
                    "(snnTorch has no multi-step path for neurons with a reset)"
                ),
                "spike dtype": (
                    "custom: the snnTorch surrogates used are subclassed so their spikes keep the input's dtype: "
                    "snnTorch returns (x > 0).float(), which in float64 rounds every gradient reaching a spike to "
                    "float32 (gradient error up to 9e-7 relative, enough to flip spikes in float64 training); "
                    "a no-op in float32"
                ),
                "glue": (
                    "thin subclasses of snn.Leaky / snn.Synaptic: fire() keeps the membrane it compares with "
                    "the threshold (the recorded membrane), the reset mechanism is a Python int instead of a "
                    "tensor buffer (snnTorch branches on it every step with reset_delay=False: a host "
                    "synchronisation on CUDA), neurons leave snnTorch's global instance list, state is passed "
                    "explicitly from zero at every forward and cleared afterwards"
                ),
            },
            notes=(
                "snnTorch neurons (snn.Leaky, snn.Synaptic) stepped in PyTorch eager mode, one Python loop "
                "over T per layer; no equation differs from the specification (float64 parity is exact "
                "to rounding)."
            ),
        )

    def build_model(self) -> nn.Module:
        return build_network(self.spec, SnnTorchBlocks())


# ``snntorch:compile``: the same steps under torch.compile
SnnTorchCompiledBackend = compiled_variant(SnnTorchBackend)
SnnTorchCudaGraphsBackend = compiled_variant(SnnTorchBackend, mode=CUDA_GRAPHS_MODE, variant="cudagraphs")
