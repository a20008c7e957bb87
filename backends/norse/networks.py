"""The Norse building blocks of the shared PyTorch networks (:mod:`backends.torch_networks`)."""

from __future__ import annotations

from ..torch_networks import Blocks, FoldedTdBN
from . import neurons


class NorseBlocks(Blocks):
    """Norse LIFBox layers per neuron kind, Norse's exponential filter as the
    synapse, and the shared time-folded tdBN (Norse has no tdBN)."""

    def neuron(self, kind, params):
        return neurons.NEURONS[kind](*params)

    def synapse(self, decay):
        return neurons.ExpFilterSynapse(decay)

    def tdbn(self, channels, alpha, v_th, eps, momentum):
        return FoldedTdBN(channels, alpha, v_th, eps, momentum)


NORSE = NorseBlocks()
