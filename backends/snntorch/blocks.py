"""snnTorch's building blocks of the shared PyTorch networks (:mod:`backends.torch_networks`).

Each spiking layer is an snnTorch neuron (:mod:`neurons`: ``snn.Leaky`` or
``snn.Synaptic`` with thin glue), stepped through time by :func:`neurons.run`
after the layer below has run over all T (no layer depends on a later one,
so this is the same computation as snnTorch's tutorial loop over t with all
layers inside).  Per neuron kind of the spec:

* ``soft`` (synthetic), with its synapse: ``snn.Synaptic(alpha=a_s,
  beta=a_m, reset_mechanism="subtract", reset_delay=False)``.  It computes
  I' = a_s I' + X and V = a_m V + I'; the task's V = a_m (...) + (1 - a_m) I
  is that with X = (1 - a_m)(W x + b), so the current snnTorch keeps is
  (1 - a_m) I;
* ``subtractive`` (fc_mnist, snnTorch tutorial 5): ``snn.Leaky(beta)`` with
  the atan surrogate, subtractive reset from the previous step, detached;
* ``hard`` (fc_mnist_poisson, lif_layer): H = (1 - 1/tau) V + X / tau, so
  ``snn.Leaky(beta=1 - 1/tau, reset_mechanism="zero", reset_delay=False)``
  fed X / tau: the reset to zero right after the spike, with the spike's
  surrogate gradient, V = H (1 - S);
* ``stbp`` (dsrn_tdbn): U[t] = tau U[t-1] (1 - S[t-1]) + X[t] as
  ``snn.Leaky(beta=tau, reset_mechanism="zero", reset_delay=False)``: the
  stored membrane is U (1 - S) right after the spike, with S's surrogate
  gradient (the reference does not detach the reset); snnTorch's delayed
  reset H(stored - V_th) is then always 0, because the stored membrane is 0
  after a spike and at most V_th without one.

The synthetic readout O[t] = a_s O[t-1] + W2 S[t] + b2 is ``snn.Leaky(beta=a_s,
reset_mechanism="none")``'s membrane; its spikes are not used
(``surrogate_disable`` skips the autograd function).  tdBN is the shared
folded one (snnTorch has none; its BatchNormTT2d normalises each step
separately, which is not tdBN).
"""

from __future__ import annotations

import torch
from torch import nn

from ..torch_networks import Blocks, FoldedTdBN
from . import neurons
from .neurons import Leaky, SoftResetSynaptic, constant


class SnnTorchNeuron(nn.Module):
    """One spiking layer: an snnTorch neuron fed ``scale * inputs``, run over time."""

    def __init__(self, lif: nn.Module, scale: float | None = None):
        super().__init__()
        self.lif, self.scale = lif, scale

    def forward(self, inputs: torch.Tensor, record: bool, steps: int | None = None):
        x = inputs if self.scale is None else inputs * self.scale
        return neurons.run(self.lif, x, record, steps)


class ReadoutSynapse(nn.Module):
    """The non-spiking exponential synapse: a never-resetting snn.Leaky's membrane."""

    def __init__(self, decay: float):
        super().__init__()
        self.lif = Leaky(beta=constant(decay), reset_mechanism="none", surrogate_disable=True)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return neurons.run(self.lif, inputs, record=True)[1]


def subtractive(beta: float, v_th: float, alpha: float) -> SnnTorchNeuron:
    return SnnTorchNeuron(Leaky(beta=constant(beta), threshold=constant(v_th), spike_grad=neurons.atan(alpha)))


def hard(tau: float, v_th: float, alpha: float) -> SnnTorchNeuron:
    lif = Leaky(beta=constant(1.0 - 1.0 / tau), threshold=constant(v_th), spike_grad=neurons.sigmoid(alpha),
                reset_mechanism="zero", reset_delay=False)
    return SnnTorchNeuron(lif, 1.0 / tau)


def stbp(tau: float, v_th: float, a: float, center: float) -> SnnTorchNeuron:
    lif = Leaky(beta=constant(tau), threshold=constant(v_th), spike_grad=neurons.rectangular(a, center),
                reset_mechanism="zero", reset_delay=False)
    return SnnTorchNeuron(lif)


# the spec's neuron kinds -> snnTorch neurons (soft comes with its synapse: synaptic_neuron)
NEURONS = {"subtractive": subtractive, "hard": hard, "stbp": stbp}


class SnnTorchBlocks(Blocks):
    def neuron(self, kind, params):
        try:
            return NEURONS[kind](*params)
        except KeyError:
            raise NotImplementedError(f"snntorch has no stand-alone {kind!r} neuron") from None

    def synapse(self, decay):
        return ReadoutSynapse(decay)

    def synaptic_neuron(self, kind, decay, params):
        if kind != "soft":
            return super().synaptic_neuron(kind, decay, params)
        a_mem, v_th, alpha, width = params
        lif = SoftResetSynaptic(
            alpha=constant(decay), beta=constant(a_mem), threshold=constant(v_th),
            spike_grad=neurons.triangle(alpha, width, v_th), reset_mechanism="subtract", reset_delay=False,
        )
        return _Synaptic(SnnTorchNeuron(lif, 1.0 - a_mem))

    def tdbn(self, channels, alpha, v_th, eps, momentum):
        return FoldedTdBN(channels, alpha, v_th, eps, momentum)


class _Synaptic(nn.Module):
    """``synaptic_neuron``'s signature (inputs, record) over a neuron layer."""

    def __init__(self, layer: SnnTorchNeuron):
        super().__init__()
        self.layer = layer

    def forward(self, inputs: torch.Tensor, record: bool):
        return self.layer(inputs, record)
