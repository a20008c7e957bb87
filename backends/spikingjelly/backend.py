"""The ``spikingjelly`` backend and its ``spikingjelly:torch`` variant (SpikingJelly 2.x).

SpikingJelly 2.0 has no ``backend=`` argument: a multi-step ``LIFNode`` calls
the registered operator ``sj_lif`` when its surrogate has a fused kernel
(Sigmoid, ATan, PiecewiseQuadratic, PiecewiseExp, SoftSign, SuperSpike, Erf)
and the input is float32/float16/bfloat16 with a float32 state; otherwise it
runs its Torch reference (a Python loop over T with autograd).  The operator
runs the Torch reference on the CPU; on CUDA it picks, once per device, the
first available of ``cuda`` (native extension, only if built from source),
``triton`` and ``torch`` -- or the one named by the environment variable
``SJ_LIF_CUDA_IMPLEMENTATION``, read when ``spikingjelly._ops.lif`` is first
imported.  The registry sets it to ``torch`` before importing
``spikingjelly:torch``; with it set, SpikingJelly refuses the Torch
reference fallback on CUDA (a non-fused surrogate, float64), so that variant
uses SpikingJelly's pure-PyTorch ``SimpleLIFNode`` there instead.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import functional, surrogate
from torch import nn


from ..base import Capabilities
from ..torch_common import CUDA_GRAPHS_MODE, TorchBackend, compiled_variant
from .networks import build_network, lif_surrogate, tdbn_scales

ENV = "SJ_LIF_CUDA_IMPLEMENTATION"


# ---------------------------------------------------------------- kernel introspection
def lif_cuda_request() -> str | None:
    """The ``SJ_LIF_CUDA_IMPLEMENTATION`` value SpikingJelly's LIF operator was
    imported with ("auto" when unset), read from SpikingJelly itself (imports the
    operator if nothing has yet, which fixes the value from the environment now);
    None if this SpikingJelly does not record it."""
    try:
        from spikingjelly._ops import lif as lif_ops

        return str(lif_ops._selection._requested)
    except (ImportError, AttributeError):
        return None


def lif_kernel(device: str) -> str | None:
    """The implementation SpikingJelly binds the ``lif`` operator to on ``device``
    (``functional.neuron_implementation``); None where it cannot be asked (no CUDA)."""
    if device == "cuda" and not torch.cuda.is_available():
        return None
    try:
        return str(functional.neuron_implementation("lif", torch.device(device))["implementation"])
    except Exception as exc:  # no implementation at all: say so in the record
        return f"unavailable ({type(exc).__name__}: {exc})"


def fused_surrogate(fn) -> bool:
    """Whether ``LIFNode`` with surrogate ``fn`` can use the registered ``sj_lif`` operator."""
    try:
        from spikingjelly._ops.surrogate import _surrogate_spec

        return _surrogate_spec(fn) is not None
    except ImportError:  # fall back to the list of SpikingJelly 2.0
        fused = ("Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "SuperSpike", "Erf")
        return type(fn).__module__ == surrogate.__name__ and type(fn).__name__ in fused


def _cuda_kernel_text() -> str:
    request = lif_cuda_request()
    kernel = lif_kernel("cuda")
    setting = f"{ENV}={request}" if request is not None else f"{ENV} not readable from SpikingJelly"
    if kernel is None:
        chosen = ("the first available of cuda (native, only if built from source), triton, torch"
                  if request in (None, "auto") else request)
        return f"{setting}: {chosen} (not queried: no CUDA device in this process)"
    return f"{setting}: {kernel} (functional.neuron_implementation('lif', cuda))"


def _common_components() -> dict[str, str]:
    return {
        "neuron:synthetic": (
            "library: neuron.LIFNode(tau=1/(1-a_m), decay_input=True, v_reset=None (soft), v_threshold=V_th, "
            "detach_reset=False): H = V + (I - V)/tau = a_m V + (1-a_m) I, V = H - V_th S, i.e. the spec's "
            "V[t] = a_m (V[t-1] - V_th S[t-1]) + (1-a_m) I[t] with the reset's gradient kept"
        ),
        "synapse:synthetic": (
            "custom: ExponentialSynapse (a MemoryModule, register_memory + single_step_functional_forward), "
            "I[t] = a_s I[t-1] + W x[t] + b, also for the readout O[t], because layer.SynapseFilter computes "
            "I[t] = I[t-1] - (1 - X[t]) I[t-1]/tau + X[t] (no decay at input spikes; nonlinear for real input)"
        ),
        "surrogate:synthetic": (
            "custom: ScaledTriangle (SurrogateFunctionBase subclass), h = 0.3 max(0, 1 - |x|) on "
            "x = (V - V_th)/V_th, because no SpikingJelly surrogate has a triangle of height 0.3 and "
            "half-width 1 (PiecewiseQuadratic ties the two: alpha - alpha^2 |x|)"
        ),
        "neuron:fc_mnist": (
            "custom: SubtractiveLeakyNode (neuron.BaseNode subclass, single_step_functional_forward), "
            "U[t] = beta U[t-1] + X[t] - V_th H(U[t-1] - V_th) with the reset detached, because LIFNode's "
            "soft reset subtracts V_th inside the spike's step, before the next decay (the next membrane "
            "would lose beta*V_th = 0.95, not 1.0)"
        ),
        "surrogate:fc_mnist": (
            "custom: StrictATan, a subclass of surrogate.ATan(alpha=2) keeping its gradient "
            "(alpha/2) / (1 + (pi alpha x / 2)^2) = 1/(1 + (pi x)^2) but firing at x > 0 (the spec's H) instead of "
            "x >= 0, because under bf16 the first membrane U[1] = W x + b is a bfloat16 number and equals V_th = 1 "
            "exactly for about 5e-5 of the hidden neuron-samples (Fashion-MNIST, initial weights; 1e-3 in the "
            "parity case), where surrogate.ATan would fire and the spec not"
        ),
        "neuron:fc_mnist_poisson": (
            "library: neuron.LIFNode(tau=100, decay_input=True, v_reset=0, v_threshold=1, detach_reset=False) "
            "-- the SpikingJelly tutorial, identical to the spec's hard_reset_lif"
        ),
        "surrogate:fc_mnist_poisson": "library: surrogate.Sigmoid(alpha=4)",
        "neuron:lif_layer": (
            "library: neuron.LIFNode(tau=2, decay_input=True, v_reset=0, v_threshold=1, detach_reset=False) "
            "after layer.Linear(N, N, bias=False) -- fc_mnist_poisson's neuron, one layer"
        ),
        "surrogate:lif_layer": "library: surrogate.Sigmoid(alpha=4) (a fused surrogate: the sj_lif operator)",
        "neuron:dsrn_tdbn": (
            "library: neuron.LIFNode(tau=4/3, decay_input=False, v_reset=0, v_threshold=0.4, detach_reset=False): "
            "H = V - V/tau + X = 0.25 V + X with V = H (1 - S), i.e. U[t] = 0.25 U[t-1] (1 - S[t-1]) + X[t] "
            "with the gradient through the reset"
        ),
        "surrogate:dsrn_tdbn": (
            "custom: StrictRect, a subclass of surrogate.Rect(alpha=1/(2a)=1) keeping its gradient (h = 1 on "
            "|U - V_th| < 0.5) and firing at U > V_th: surrogate.Rect fires at U == V_th, which the parity case "
            "reaches exactly (a static stem with running statistics); Rect has no fused kernel, so nothing else "
            "changes. --surrogate-center zero: custom ShiftedRect (SurrogateFunctionBase subclass), the same "
            "window centred on U = 0, also firing at U > V_th"
        ),
        "tdbn": (
            "library: layer.ThresholdDependentBatchNorm2d (BatchNorm2d over T*B, so statistics over T, B, H, W; "
            "momentum 0.1, unbiased running variance); its weight is gamma = alpha V_th lambda, converted on "
            "load/read, gradients scaled by alpha V_th, Adam group with lr * alpha V_th and eps / (alpha V_th) "
            "so the trajectory of lambda is Adam's"
        ),
        "synapses": "library: layer.Linear / layer.Conv2d in step_mode='m' (T folded into the batch)",
        "membrane record": (
            "custom hook: LIFNode's v_seq is post-reset, so with record=True the layer runs with store_v_seq and "
            "H[t] is recomputed from V[t-1] and X[t] by LIFNode's charge equation; without record nothing changes"
        ),
        "state": "reset() of every MemoryModule before and after every forward pass (functional.reset_net without its module cache)",
    }


_DIFFERENCES = {
    "lif_layer": (
        "SpikingJelly's LIFNode fires at H >= V_th, the spec at H > V_th, and in lif_layer exact ties occur: "
        "the neuron input W x is a bfloat16 number under bf16 and tau = 2 halves exactly, so H = V + (X - V)/2 "
        "lands on 1.0: there SpikingJelly fires and stbp, snnTorch and brainstate do not, and the trajectories "
        "then diverge. Rare in fp32, none in fp64 (parity is exact); tests/test_backend_spikingjelly.py pins the "
        "tie, and parity's edge case (a membrane exactly at V_th) fails on it in fp64 too: one spike in the edge "
        "sample, then the trajectories differ. Kept: a strict surrogate (as fc_mnist's StrictATan) has no fused "
        "kernel, which would take LIFNode off the sj_lif operator this benchmark measures"
    ),
}

_NOTES = (
    "SpikingJelly's neurons fire at H >= V_th (surrogate.heaviside) where the spec says H > V_th. dsrn_tdbn's "
    "neurons fire at > (StrictRect: Rect has no fused kernel to lose, and a static stem with running statistics "
    "can land exactly on V_th). With LIFNode (synthetic, fc_mnist_poisson) this is kept: an exact tie needs a "
    "float32 membrane equal to the "
    "threshold, which has probability zero for real-valued inputs and weights, also under bf16 (there the "
    "neuron input is a bfloat16 number, but fc_mnist_poisson's first H is X/100 and needs X = 100 exactly, "
    "dsrn_tdbn's V_th = 0.4 is no bfloat16 number, synthetic filters its input in float32); measured: no tie "
    "and no spike different from stbp in any parity case nor on a Fashion-MNIST batch, fp64, fp32 and bf16. "
    "fc_mnist's custom neuron fires at > (StrictATan), because there ties do occur under bf16. "
    "lif_layer is the exception where LIFNode meets ties (tau = 2 and a bfloat16 input): see its entry in "
    "differences; it keeps the library's Sigmoid, whose fused kernel is what that benchmark measures. "
    "dsrn_tdbn: the stem convolution of the static image runs once and is repeated over T. "
    "Neuron inputs and tdBN run in float32 under bf16."
)


# ---------------------------------------------------------------- the backends
class SpikingJellyBackend(TorchBackend):
    """SpikingJelly 2.x ``activation_based``, multi-step, the library's kernel choice for the device."""

    framework = "spikingjelly"
    variant: str | None = None

    def __init__(self, spec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        self.check_kernel_setting(device)
        self._scales: dict[str, float] | None = None
        super().__init__(spec, weights, device=device, precision=precision)

    # -- kernel selection ------------------------------------------------------
    @classmethod
    def check_kernel_setting(cls, device: str) -> None:
        """The default variant must not run with the Torch kernel forced on CUDA (that is ``spikingjelly:torch``)."""
        if device == "cuda" and torch.cuda.is_available() and lif_cuda_request() == "torch":
            raise NotImplementedError(
                f"spikingjelly: SpikingJelly's LIF operator was imported with {ENV}=torch, so the default "
                "variant would run the Torch kernel; run it in a process without that variable "
                "(or use the backend spikingjelly:torch)"
            )

    def lif_kind(self) -> str:
        """"lif" (neuron.LIFNode) everywhere, except where :class:`SpikingJellyTorchBackend` needs "simple"."""
        return "lif"

    def build_model(self) -> nn.Module:
        return build_network(self.spec, self.lif_kind())

    def lif_path(self) -> str:
        """What runs the LIF neurons of this task, on this device, at this precision."""
        if self.spec.name == "fc_mnist":
            return "custom SubtractiveLeakyNode: a Python loop over T with autograd (no LIF kernel)"
        if self.lif_kind() == "simple":
            return "neuron.SimpleLIFNode: pure PyTorch, a Python loop over T with autograd (no LIF kernel)"
        sg = lif_surrogate(self.spec)
        if not fused_surrogate(sg):
            why = f"surrogate {type(sg).__name__} has no fused kernel"
        elif self.dtype == torch.float64:
            why = "float64 has no fused kernel"
        else:
            return f"neuron.LIFNode, sj_lif operator: {lif_kernel(self.device)}"
        return f"neuron.LIFNode, SpikingJelly's Torch reference path ({why}): a Python loop over T with autograd"

    def device_info(self) -> dict[str, Any]:
        info = super().device_info()
        info["spikingjelly_lif"] = self.lif_path()
        if self.device == "cuda":
            info["spikingjelly_lif_cuda_setting"] = lif_cuda_request()
        return info

    # -- weights: tdBN stores gamma = c * lambda -------------------------------------
    def scales(self) -> dict[str, float]:
        if self._scales is None:
            self._scales = tdbn_scales(self.model)
        return self._scales

    def to_module(self, name: str, value: np.ndarray) -> np.ndarray:
        c = self.scales().get(name)
        return value if c is None else value * c

    def from_module(self, name: str, value: np.ndarray) -> np.ndarray:
        c = self.scales().get(name)
        return value if c is None else value / c

    def gradient_from_module(self, name: str, grad: np.ndarray) -> np.ndarray:
        # d loss / d lambda = c * d loss / d gamma
        c = self.scales().get(name)
        return grad if c is None else grad * c

    def optimizer_groups(self) -> list[dict]:
        params = dict(self.model.named_parameters())
        by_scale: dict[float, list] = {}
        for name, c in self.scales().items():
            by_scale.setdefault(c, []).append(params[name])
        scaled = {id(p) for ps in by_scale.values() for p in ps}
        groups = [{"params": [p for p in self.model.parameters() if id(p) not in scaled]}]
        for c, ps in by_scale.items():
            groups.append({"params": ps, "lr_scale": c, "eps": self.spec.adam_eps / c})
        return [g for g in groups if g["params"]]

    # -- description ---------------------------------------------------------------
    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        out = {"spikingjelly": importlib.metadata.version("spikingjelly")}
        try:
            out["triton"] = importlib.metadata.version("triton")
        except importlib.metadata.PackageNotFoundError:
            pass
        return out

    @classmethod
    def kernel_components(cls) -> dict[str, str]:
        return {
            "lif kernel:cpu": (
                f"{lif_kernel('cpu')}: LIFNode's sj_lif operator runs SpikingJelly's Torch reference step "
                "with autograd (fc_mnist_poisson and lif_layer in float32/bf16); Rect, custom surrogates and "
                "float64 take LIFNode's Torch reference path directly"
            ),
            "lif kernel:cuda": (
                f"{_cuda_kernel_text()} for LIFNode with a fused surrogate (fc_mnist_poisson, lif_layer); "
                "dsrn_tdbn (Rect) and synthetic (custom surrogate) run LIFNode's Torch reference path "
                "(SpikingJelly has no fused kernel for them)"
            ),
        }

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={**_common_components(), **cls.kernel_components()},
            differences=dict(_DIFFERENCES),
            notes="SpikingJelly's default multi-step kernels, chosen by the library per device. " + _NOTES,
        )


class SpikingJellyTorchBackend(SpikingJellyBackend):
    """SpikingJelly with its pure-PyTorch LIF kernel (``SJ_LIF_CUDA_IMPLEMENTATION=torch``)."""

    variant = "torch"

    @classmethod
    def check_kernel_setting(cls, device: str) -> None:
        if device != "cuda" or not torch.cuda.is_available():
            return  # the CPU always runs the Torch reference; no CUDA: TorchBackend reports it
        request = lif_cuda_request()
        kernel = lif_kernel("cuda")
        if request != "torch" or kernel != "torch":
            raise NotImplementedError(
                f"spikingjelly:torch needs {ENV}=torch in the environment before SpikingJelly's LIF operator "
                f"is imported, but it was imported with {ENV}={request!r} (kernel on CUDA: {kernel}); "
                "run this variant in a fresh process (python -m tasks.run does), with nothing importing "
                "SpikingJelly's neurons before the backend registry sets the variable"
            )

    def lif_kind(self) -> str:
        # With the Torch kernel forced, SpikingJelly 2.0 refuses LIFNode's Torch
        # reference path on CUDA (a surrogate without a fused kernel, float64),
        # so those runs use its pure-PyTorch SimpleLIFNode (the same equations).
        if self.device != "cuda":
            return "lif"
        sg = lif_surrogate(self.spec)
        if sg is not None and (self.precision == "fp64" or not fused_surrogate(sg)):
            return "simple"
        return "lif"

    @classmethod
    def kernel_components(cls) -> dict[str, str]:
        return {
            "lif kernel:cpu": f"{lif_kernel('cpu')}: as the default variant ({ENV} has no effect on the CPU)",
            "lif kernel:cuda": (
                f"{_cuda_kernel_text()} for LIFNode with a fused surrogate (fc_mnist_poisson, lif_layer: "
                "SpikingJelly's Torch loop forward and hand-written backward); dsrn_tdbn and synthetic use "
                "neuron.SimpleLIFNode (pure PyTorch, autograd), because with the Torch kernel forced LIFNode "
                "refuses surrogates without a fused kernel on CUDA. Refuses to run on CUDA unless "
                f"{ENV}=torch was in effect when SpikingJelly's LIF operator was imported"
            ),
        }

    @classmethod
    def capabilities(cls) -> Capabilities:
        caps = super().capabilities()
        return Capabilities(
            tasks=caps.tasks, devices=caps.devices, precisions=caps.precisions, components=caps.components,
            differences=caps.differences,
            notes=f"SpikingJelly with {ENV}=torch: its pure-PyTorch LIF kernel on CUDA. " + _NOTES,
        )


# ``spikingjelly:compile``: the same steps under torch.compile (on its pure-PyTorch LIF kernel)
SpikingJellyTorchCompiledBackend = compiled_variant(SpikingJellyTorchBackend)
SpikingJellyTorchCudaGraphsBackend = compiled_variant(SpikingJellyTorchBackend, mode=CUDA_GRAPHS_MODE,
                                                      variant="cudagraphs")
