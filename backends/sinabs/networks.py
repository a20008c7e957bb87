"""Sinabs's building blocks of the shared PyTorch networks (:mod:`backends.torch_networks`).

One ``sinabs.layers.LIF`` per spiking layer (its update, spike_fn, reset_fn and
surrogate_grad_fn chosen per neuron kind, see :mod:`backends.sinabs.neurons`),
``sinabs.layers.ExpLeak`` for the exponential synapse, and the shared
:class:`~backends.torch_networks.FoldedTdBN` (Sinabs has no tdBN).
"""

from __future__ import annotations

from sinabs.activation import MembraneSubtract

from ..torch_networks import Blocks, FoldedTdBN
from . import neurons


def soft(a_mem: float, v_th: float, alpha: float, width: float) -> neurons.SinabsNeuron:
    """synthetic: V = a_m (V - V_th S[t-1]) + (1 - a_m) I: norm_input=True, Sinabs's own
    MembraneSubtract (immediate, the spike's gradient kept), triangle surrogate."""
    return neurons.SinabsNeuron(decay=a_mem, v_th=v_th, norm_input=True, reset_fn=MembraneSubtract(),
                                surrogate_grad_fn=neurons.Triangle(alpha, width))


def subtractive(beta: float, v_th: float, alpha: float) -> neurons.SinabsNeuron:
    """fc_mnist: U = beta U + X - V_th S[t-1] (detached): norm_input=False, the delayed reset."""
    return neurons.SinabsNeuron(decay=beta, v_th=v_th, norm_input=False,
                                reset_fn=neurons.DelayedSubtract(subtract_value=v_th / beta),
                                surrogate_grad_fn=neurons.ArcTan(alpha))


def hard(tau: float, v_th: float, alpha: float) -> neurons.SinabsNeuron:
    """fc_mnist_poisson, lif_layer: H = V + (X - V) / tau = alpha V + (1 - alpha) X with
    alpha = 1 - 1/tau (norm_input=True); V = H (1 - S) with S's gradient."""
    return neurons.SinabsNeuron(decay=1.0 - 1.0 / tau, v_th=v_th, norm_input=True,
                                reset_fn=neurons.ZeroResetWithGradient(), surrogate_grad_fn=neurons.Sigmoid(alpha))


def stbp(tau: float, v_th: float, a: float, center: float) -> neurons.SinabsNeuron:
    """dsrn_tdbn: U = tau U (1 - S[t-1]) + X: alpha = tau, norm_input=False, the reset to 0
    with S's gradient, rectangular surrogate."""
    return neurons.SinabsNeuron(decay=tau, v_th=v_th, norm_input=False, reset_fn=neurons.ZeroResetWithGradient(),
                                surrogate_grad_fn=neurons.Rectangular(a, center))


# the spec's neuron kinds -> Sinabs LIF configurations
NEURONS = {"soft": soft, "subtractive": subtractive, "hard": hard, "stbp": stbp}


class SinabsBlocks(Blocks):
    def neuron(self, kind, params):
        return NEURONS[kind](*params)

    def synapse(self, decay):
        return neurons.SinabsSynapse(decay)

    def tdbn(self, channels, alpha, v_th, eps, momentum):
        return FoldedTdBN(channels, alpha, v_th, eps, momentum)


SINABS = SinabsBlocks()
