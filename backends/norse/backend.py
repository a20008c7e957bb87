"""The ``norse`` backend: the shared PyTorch networks built from Norse's LIFBox
cells (:mod:`backends.norse.neurons`), driven by the shared PyTorch machinery."""

from __future__ import annotations

import norse
from torch import nn

from ..base import Capabilities
from ..torch_common import CUDA_GRAPHS_MODE, TorchBackend, compiled_variant
from ..torch_networks import build_network
from .networks import NORSE


class NorseBackend(TorchBackend):
    framework = "norse"

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        return {"norse": norse.__version__}

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                "neuron:synthetic": (
                    "library: norse.torch.LIFBoxCell, LIFBoxParameters(tau_mem_inv=1 - a_m, v_th=1, v_leak=0, "
                    "reset_method=norse's reset_subtract) at dt=1, fed the synapse's current I: "
                    "V = a_m (V - V_th S) + (1 - a_m) I with the reset's spike gradient kept (Norse's "
                    "current-based LIFCell has only the reset to v_reset, not a soft reset)"
                ),
                "synapse:synthetic": (
                    "library: norse.torch.functional.filter.exp_filter_step (the step of norse's ExpFilter, "
                    "whose own Linear is the shared fc1/readout layer) for the input synapse and the "
                    "non-spiking readout O[t] = a_s O[t-1] + W2 S[t] + b2"
                ),
                "neuron:fc_mnist": (
                    "library: LIFBoxCell stepping (tau_mem_inv=1 - beta, fed X / (1 - beta)): U = beta U + X; "
                    "custom: reset_method = norse's reset_subtract on the detached spike with V_th / beta, "
                    "because the task subtracts V_th after the decay (detached) and norse's resets act "
                    "before it (the reset_method hook of LIFBoxParameters)"
                ),
                "neuron:fc_mnist_poisson": (
                    "library: LIFBoxCell with LIFBoxParameters(tau_mem_inv=1/tau, v_reset=0, "
                    "reset_method=reset_value) at dt=1: H = V + (X - V)/tau, V = H (1 - S) with S's gradient; "
                    "norse's own lif_box_feed_forward_step"
                ),
                "neuron:lif_layer": (
                    "library: the LIFBoxCell of fc_mnist_poisson (tau=2), after a bias-free Linear(N, N)"
                ),
                "neuron:dsrn_tdbn": (
                    "library: LIFBox equations with LIFBoxParameters(tau_mem_inv=1 - tau, v_th=0.4, v_reset=0, "
                    "reset_method=reset_value) fed X / (1 - tau): U = tau U (1 - S[t-1]) + X, reset not "
                    "detached; stepped by a LIFBoxCell subclass for its surrogate (see surrogate:dsrn_tdbn)"
                ),
                "surrogate:synthetic": (
                    "library: norse method='triangle', alpha=0.3: 0.3 max(0, 1 - |V - V_th|), the task's "
                    "h((V - V_th)/V_th)/V_th at V_th = 1"
                ),
                "surrogate:fc_mnist_poisson": (
                    "library: norse method='tanh' (HeaviTanh), alpha=2: 1 - tanh(2x)^2 = 4 s(4x)(1 - s(4x)), "
                    "the task's sigmoid surrogate (the same function; never NaN; in float32 within 1e-7 of the "
                    "sigmoid form, 0 beyond |x| > 4.51 where that form is < 6e-8); also lif_layer"
                ),
                "surrogate:fc_mnist": (
                    "custom: the shared autograd Function ArctanSpike (backends/torch_surrogates.py), h(x) = 1/(1 + (pi x)^2), "
                    "because norse has no arctangent surrogate"
                ),
                "surrogate:dsrn_tdbn": (
                    "custom: the shared autograd Function RectangularSpike, h = 1/(2a) for |U - c| < a (c = V_th or 0, "
                    "--surrogate-center), because norse has no rectangular surrogate"
                ),
                "custom surrogate cell": (
                    "custom: SurrogateLIFBoxCell, a LIFBoxCell subclass whose activation is the LIFBox step "
                    "with a given spike function, because norse's threshold() dispatches on a closed list of "
                    "method names (fc_mnist, dsrn_tdbn)"
                ),
                "tdbn": (
                    "custom: torch batch_norm on the time-folded [T*B, C, H, W] tensor with weight "
                    "lambda * alpha * V_th (shared FoldedTdBN; norse has no tdBN)"
                ),
                "time": (
                    "linear layers, convolutions and tdBN fold T into the batch (a static input is projected "
                    "once); each layer is a Python loop over T calling its LIFBoxCell with an explicit "
                    "LIFBoxFeedForwardState from zero: norse ships no multi-step LIFBox module, and its generic "
                    "SNN wrapper returns post-reset states and indexes input[t] per step (a zero-filled [T, ...] "
                    "gradient per step in backward)"
                ),
                "recorded membrane": (
                    "glue: the reset_method hook wrapped to keep the membrane norse hands it, the one compared "
                    "with the threshold before the reset"
                ),
                "constants": (
                    "LIFBoxParameters hold Python floats, so they take the state's dtype (exact float64 in fp64) "
                    "and no tensor or parameter; dt = 1"
                ),
            },
            notes=(
                "Norse 1.1 LIFBoxCell neurons (norse.torch) stepped in PyTorch eager mode, one Python loop over "
                "T per layer; every task's equations map exactly onto LIFBox's parameters and reset_method "
                "hook (float64 parity exact to rounding). Not used: norse's current-based LIF/LIFCell (hard "
                "reset only), SequentialState (the shared networks thread no state between layers)."
            ),
        )

    def build_model(self) -> nn.Module:
        return build_network(self.spec, NORSE)


# ``norse:compile``: the same steps under torch.compile
NorseCompiledBackend = compiled_variant(NorseBackend)
NorseCudaGraphsBackend = compiled_variant(NorseBackend, mode=CUDA_GRAPHS_MODE, variant="cudagraphs")
