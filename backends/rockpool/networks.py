"""Rockpool's building blocks of the shared PyTorch networks (:mod:`backends.torch_networks`).

Only synthetic's neuron has a Rockpool form: Rockpool's Torch LIF neurons
(``LIFTorch``, ``LIFBitshiftTorch``, ``LIFNeuronTorch``, ``aLIFTorch``) all
reset by subtracting the threshold right after the spike, with the spike's
gradient, before the next decay.  That is synthetic's soft reset; the other
kinds (``NOT_EXPRESSIBLE``) need a reset Rockpool has no form for, and a
``spike_generation_fn`` cannot supply one: its single output is both the
spike the layer emits and the amount (times the threshold) subtracted.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.specs import TaskSpec

from ..torch_networks import Blocks, build_network
from .neurons import Synapse, SynapticLIF

# the neuron kinds of tasks.specs.NEURON_KINDS Rockpool's LIF cannot express, and why
NOT_EXPRESSIBLE = {
    "subtractive": (
        "fc_mnist's subtractive reset U[t] = beta U[t-1] + X[t] - V_th H(U[t-1] - V_th) subtracts V_th after "
        "the decay and without gradient; Rockpool's LIF subtracts it before the next decay (the next membrane loses "
        "beta V_th = 0.95 instead of 1) and with the spike's surrogate gradient"
    ),
    "hard": (
        "fc_mnist_poisson's and lif_layer's hard reset V = H (1 - S) (to 0) has no Rockpool form: its LIF "
        "neurons only reset by subtraction, V - V_th S"
    ),
    "stbp": (
        "dsrn_tdbn's multiplicative reset U[t] = tau U[t-1] (1 - S[t-1]) + X[t] (to 0) has no Rockpool form: "
        "its LIF neurons only reset by subtraction, V - V_th S"
    ),
}


class RockpoolBlocks(Blocks):
    """``LIFTorch`` for the synaptic soft-reset neuron, ``ExpSynTorch`` for the synapse."""

    def neuron(self, kind: str, params: tuple[float, ...]) -> nn.Module:
        why = NOT_EXPRESSIBLE.get(kind, f"Rockpool's {kind} neuron is LIFTorch with its own synapse")
        raise NotImplementedError(f"rockpool: {why}")

    def synapse(self, decay: float) -> nn.Module:
        return Synapse(decay)

    def synaptic_neuron(self, kind: str, decay: float, params: tuple[float, ...]) -> nn.Module:
        if kind != "soft":
            raise NotImplementedError(f"rockpool: {NOT_EXPRESSIBLE.get(kind, kind)}")
        return SynapticLIF(decay, *params)


def build(spec: TaskSpec) -> nn.Module:
    """The task's shared network from Rockpool's blocks, its Rockpool modules built.

    The Rockpool modules need the layer width, which they learn at a first
    call: one dry forward pass (batch of 1, one step, evaluation mode) builds
    them here, before the backend moves the network to its device and dtype.
    """
    net = build_network(spec, RockpoolBlocks())
    shape = (1, *spec.input_shape()) if spec.static_input else (1, 1, *spec.input_shape())
    net.eval()
    with torch.no_grad():
        net(torch.zeros(shape), static=spec.static_input)
    net.train()
    return net
