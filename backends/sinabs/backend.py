"""The ``sinabs`` backend: the shared PyTorch networks built from Sinabs layers
(:mod:`backends.sinabs.networks`), driven by the shared PyTorch machinery."""

from __future__ import annotations

import importlib.metadata

import sinabs
from torch import nn

from ..base import Capabilities
from ..torch_common import CUDA_GRAPHS_MODE, TorchBackend, compiled_variant
from ..torch_networks import build_network
from .networks import SINABS

_LIF = "sinabs.layers.LIF(spike_fn=StrictSpike, min_v_mem=None, train_alphas=False)"


class SinabsBackend(TorchBackend):
    framework = "sinabs"

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        versions = {"sinabs": sinabs.__version__}
        try:  # installed with Sinabs for its hardware back ends; not used here
            versions["samna"] = importlib.metadata.version("samna")
        except importlib.metadata.PackageNotFoundError:
            pass
        return versions

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                "neuron:synthetic": (
                    f"library: {_LIF} with tau_mem = 20 (alpha = a_m), norm_input=True "
                    "(V = a_m V + (1 - a_m) I) and Sinabs's MembraneSubtract (V -= V_th S right after the spike, "
                    "S with its surrogate gradient: the soft reset of the next step)"
                ),
                "synapse:synthetic": (
                    "library: sinabs.layers.ExpLeak(tau_mem = 10, norm_input=False) as the input synapse "
                    "I[t] = a_s I[t-1] + W1 x + b1 and the readout O[t] = a_s O[t-1] + W2 S + b2 (LIF's own "
                    "tau_syn is not used: Sinabs computes I = a_s (I + x), a_s times the spec's current)"
                ),
                "neuron:fc_mnist": (
                    f"library: {_LIF} with tau_mem = -1/ln(0.95) (alpha = beta), norm_input=False; custom: "
                    "reset_fn DelayedSubtract (a MembraneSubtract subclass, subtract_value = V_th / beta, spikes "
                    "detached), because Sinabs resets right after the spike and then decays the reset by beta "
                    "with the spike's gradient, where the spec subtracts V_th at the next step without gradient"
                ),
                "neuron:fc_mnist_poisson": (
                    f"library: {_LIF} with alpha = 1 - 1/tau and norm_input=True (alpha V + (1 - alpha) X = "
                    "V + (X - V)/tau); custom: reset_fn ZeroResetWithGradient (V = H (1 - S)), because Sinabs's "
                    "MembraneReset computes V (S == 0): no gradient through the reset"
                ),
                "neuron:lif_layer": (
                    f"library: {_LIF} with alpha = 1 - 1/tau = 0.5, norm_input=True; custom: reset_fn "
                    "ZeroResetWithGradient, as fc_mnist_poisson"
                ),
                "neuron:dsrn_tdbn": (
                    f"library: {_LIF} with alpha = tau = 0.25 (tau_mem = 1/ln 4), norm_input=False, "
                    "spike_threshold 0.4; custom: reset_fn ZeroResetWithGradient (U (1 - S), S's gradient kept)"
                ),
                "spike_fn": (
                    "custom: StrictSpike, a subclass of sinabs.activation.SingleSpike with Sinabs's backward "
                    "(grad * surrogate_grad_fn(v, V_th)) and forward S = (v > V_th) in v's dtype, because "
                    "SingleSpike fires at v >= V_th (the spec: a membrane exactly at threshold does not spike) "
                    "and returns float32 spikes (in float64 every gradient reaching a spike would be rounded to "
                    "float32); Sinabs's default MultiSpike emits floor(v / V_th) spikes, not one"
                ),
                "surrogate:synthetic": (
                    "custom: surrogate_grad_fn Triangle, 0.3 max(0, 1 - |x|) / V_th with x = (v - V_th)/V_th, "
                    "because Sinabs has no triangle surrogate (Heaviside, Gaussian, MultiGaussian, "
                    "SingleExponential, PeriodicExponential)"
                ),
                "surrogate:fc_mnist": "custom: surrogate_grad_fn ArcTan, 1 / (1 + (pi x)^2), Sinabs has none",
                "surrogate:fc_mnist_poisson": (
                    "custom: surrogate_grad_fn Sigmoid, 4 s(4x) s(-4x), Sinabs has none (also lif_layer)"
                ),
                "surrogate:lif_layer": "custom: surrogate_grad_fn Sigmoid of fc_mnist_poisson",
                "surrogate:dsrn_tdbn": (
                    "custom: surrogate_grad_fn Rectangular, 1/(2a) for |v - V_th - c| < a (c = 0 or -V_th, "
                    "--surrogate-center), because Sinabs's Heaviside(window) is one-sided (v >= V_th - window) "
                    "and scaled 1/V_th"
                ),
                "tdbn": (
                    "custom: the shared FoldedTdBN (torch batch_norm on [T*B, C, H, W] with weight "
                    "lambda alpha V_th), Sinabs has no tdBN"
                ),
                "time": (
                    "linear layers, convolutions and tdBN fold T into the batch (a static input is projected "
                    "once and fed to the neuron as an expanded [B, T, ...] view); each Sinabs layer runs its "
                    "own Python loop over T (sinabs.layers.functional.lif_forward) on the batch-first "
                    "transpose of the time-major tensor; that loop takes input[:, t], whose backward writes a "
                    "zero-filled gradient of the whole [B, T, ...] input at each of the T steps (Sinabs's own "
                    "cost, kept)"
                ),
                "glue": (
                    "SinabsNeuron / SinabsSynapse: the layer's tau_mem and spike_threshold Parameters (float32, "
                    "tau_mem trainable) replaced by a float64 tensor and a Python float (plain attributes: Sinabs "
                    "takes every buffer of a layer for neuron state), the layer left uninitialised before and "
                    "after every forward (Sinabs then starts from zero state; stock Sinabs keeps the state "
                    "between calls and, on a batch-size change, resamples it from random samples), the spike_fn "
                    "object keeps the membrane it compares with the threshold (Sinabs's record_states keeps the "
                    "one after the reset)"
                ),
            },
            notes=(
                "Sinabs 3 layers (LIF, ExpLeak) stepped in PyTorch eager mode, one Python loop over T per layer; "
                "spike function, resets and surrogates through Sinabs's spike_fn / reset_fn / surrogate_grad_fn "
                "where Sinabs's own differ from the specification; no equation differs (float64 parity is exact "
                "to rounding)."
            ),
        )

    def build_model(self) -> nn.Module:
        return build_network(self.spec, SINABS)


# ``sinabs:compile``: the same steps under torch.compile
SinabsCompiledBackend = compiled_variant(SinabsBackend)
SinabsCudaGraphsBackend = compiled_variant(SinabsBackend, mode=CUDA_GRAPHS_MODE, variant="cudagraphs")
