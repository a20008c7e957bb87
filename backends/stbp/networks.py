"""Our building blocks of the shared PyTorch networks (:mod:`backends.torch_networks`).

:class:`ClearBlocks` are the readable ones, written from the equations: a
Python loop over time per neuron, autograd records every step, and the shared
:class:`~backends.torch_networks.TdBN`.  The ``stbp:fused`` variant swaps in
fused multi-step blocks (:mod:`backends.stbp.fused`) without touching the
architecture.
"""

from __future__ import annotations

from ..torch_common import over_time
from ..torch_networks import Blocks, FunctionNeuron, FunctionSynapse
from . import neurons

# the spec's neuron kinds -> our readable neurons
CLEAR_NEURONS = {
    "soft": neurons.soft_reset_lif,
    "subtractive": neurons.subtractive_lif,
    "hard": neurons.hard_reset_lif,
    "stbp": neurons.stbp_lif,
}


def clear_neuron(kind, inputs, params, record, steps=None):
    x = inputs if steps is None else over_time(inputs, steps, True)
    return CLEAR_NEURONS[kind](x, *params, record)


class ClearBlocks(Blocks):
    """The readable blocks: :mod:`backends.stbp.neurons` and the shared tdBN."""

    def neuron(self, kind, params):
        return FunctionNeuron(clear_neuron, kind, params)

    def synapse(self, decay):
        return FunctionSynapse(neurons.exponential_synapse, decay)


CLEAR = ClearBlocks()
