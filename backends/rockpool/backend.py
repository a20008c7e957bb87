"""The ``rockpool`` backend: the shared PyTorch network of synthetic built from
Rockpool's Torch modules (:mod:`backends.rockpool.neurons`), driven by the
shared PyTorch machinery."""

from __future__ import annotations

from torch import nn

from ..base import Capabilities
from ..torch_common import TorchBackend, compiled_variant
from .networks import NOT_EXPRESSIBLE, build
from .neurons import rockpool


class RockpoolBackend(TorchBackend):
    framework = "rockpool"

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        return {"rockpool": rockpool.__version__}

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            tasks=("synthetic",),
            components={
                "neuron:synthetic": (
                    "library: LIFTorch((4,), leak_mode='decays', alpha=Constant(a_m), beta=Constant(a_s), "
                    "threshold=Constant(1), bias=Constant(0), max_spikes_per_dt=1), the synaptic current its own: "
                    "I_syn = a_s (I_syn + x), V = a_m V + I_syn, then V - V_th S after a spike (the soft reset, "
                    "S's gradient kept); fed x = (1 - a_m)/a_s (W1 x + b1), because LIFTorch decays its synapse "
                    "after adding the input, so I_syn = (1 - a_m) I[t] and V[t] = a_m (V[t-1] - V_th S[t-1]) + "
                    "(1 - a_m) I[t], the spec's equation"
                ),
                "surrogate:synthetic": (
                    "custom: an autograd Function given as LIFTorch's spike_generation_fn (Rockpool's mechanism), "
                    "S = H((V - V_th)/V_th), one spike at most, with h(x) = 0.3 max(0, 1 - |x|) (the half-width 1 "
                    "as Rockpool's learning_window), because Rockpool's StepPWL emits floor(V/V_th) spikes at "
                    "V >= V_th (up to max_spikes_per_dt, 2^16 by default), its surrogate is a step (1/V_th on "
                    "V >= V_th - window) and its spikes are float32 (LIFTorch then fails in float64); "
                    "PeriodicExponential is another function (an exponential, periodic in V)"
                ),
                "readout:synthetic": (
                    "library: ExpSynTorch((2,), tau=Constant(-1/ln a_s), dt=1): I = a_s (I + x), fed "
                    "(W2 S[t] + b2)/a_s, so its output is O[t] = a_s O[t-1] + W2 S[t] + b2"
                ),
                "synapses": (
                    "torch nn.Linear of the shared networks (backends/torch_networks.py), T folded into the batch; "
                    "Rockpool's LinearTorch is not used (the architecture is written once for every PyTorch backend)"
                ),
                "constants": (
                    "library: Rockpool's Constant(...) wrapper makes decays, tau, threshold and bias non-trainable "
                    "SimulationParameters (torch buffers): the network's only nn.Parameters are the shared weights; "
                    "custom: refilled from Python floats after every .to(), because Rockpool casts every "
                    "parameter to float32 when a module is built (in float64, a_m = exp(-1/20) would be off by "
                    "2.9e-8 relative)"
                ),
                "dtype": (
                    "custom: torch's default dtype is the input's while a Rockpool module runs, because LIFTorch and "
                    "ExpSynTorch allocate their output with torch.zeros(...) in the default dtype (float32) and "
                    "write each step into it: in float64 their output would be float32 (the next float64 layer "
                    "refuses it; cast back, every gradient through a spike would be rounded to float32)"
                ),
                "membrane record": (
                    "custom: a wrapper around the spike function keeps the membrane LIFTorch hands it (V before "
                    "the reset, the spec's recorded membrane), because Rockpool's own record (record=True) holds "
                    "V after the reset, allocated in float32 on the CPU"
                ),
                "state": (
                    "library: reset_state() before and after every call (a Rockpool module would start from the "
                    "final state of the previous call's first sample); its record dictionary emptied after the "
                    "call, as Rockpool's evolve() does"
                ),
                "layout": (
                    "time-major [T, B, N] transposed to Rockpool's batch-first [B, T, N] and back; each Rockpool "
                    "module is built at a dry forward pass in build_model, because it needs its layer width, which "
                    "the shared networks' Blocks do not pass"
                ),
                "time": (
                    "Rockpool's own loop over T inside LIFTorch.forward and ExpSynTorch.forward (its multi-step "
                    "Torch API), one layer over all steps at a time. Rockpool also draws a [B, T, N] normal noise "
                    "tensor per call (times noise_std = 0) and multiplies the spikes by its zero N x N recurrent "
                    "matrix at every step without has_rec"
                ),
                "import": (
                    "custom: samna's import is blocked while Rockpool is imported, because Rockpool's "
                    "backend_management imports samna at import time and the samna 0.48.6 on PyPI (a sinabs "
                    "dependency) is a placeholder whose import runs pip install --force-reinstall samna from "
                    "another index (12 s of retries offline, a reinstall online); Rockpool then records samna "
                    "as unavailable, which its Torch modules never need"
                ),
            },
            notes=(
                "Rockpool 3.1 Torch modules (LIFTorch with its synaptic current, ExpSynTorch) in PyTorch eager "
                "mode, Rockpool's loop over T; no equation differs from the specification (float64 parity is exact "
                "to rounding). Not implemented, because Rockpool's Torch LIF neurons (LIFTorch, LIFBitshiftTorch, "
                "LIFNeuronTorch, aLIFTorch) only reset by subtracting V_th right after the spike, with its "
                "gradient, and a spike_generation_fn cannot change that (its one output is both the spike and "
                "the reset): fc_mnist (" + NOT_EXPRESSIBLE["subtractive"] + "); fc_mnist_poisson and lif_layer ("
                + NOT_EXPRESSIBLE["hard"] + "); dsrn_tdbn (" + NOT_EXPRESSIBLE["stbp"] + "; and Rockpool has no "
                "tdBN or convolutional neuron layer)."
            ),
        )

    def build_model(self) -> nn.Module:
        return build(self.spec)


# ``rockpool:compile``: the same steps under torch.compile
RockpoolCompiledBackend = compiled_variant(RockpoolBackend)
