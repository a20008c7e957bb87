"""The ``stbp:fused`` variant: our STBP networks built from fused blocks.

The architecture is :mod:`backends.torch_networks`, unchanged; what differs is
how each piece runs:

* every neuron layer is one multi-step autograd node
  (:mod:`backends.stbp.multistep`): on a CUDA device one Triton kernel for
  all T forward and one backward, on the CPU one numba kernel each way,
  keeping only the membrane for the backward pass; without either, the same
  recurrences in a PyTorch loop;
* the exponential synapse is one such node too (it keeps nothing);
* tdBN is one ``batch_norm`` call on the time-folded ``[T*B, C, H, W]``
  tensor (statistics and normalisation in the library's fused kernel), with
  the weight lambda * alpha * V_th; a static input (the stem's image, the same
  at every step) is normalised once and read by the neuron at every step;
* the convolutions run channels-last (the layout cuDNN's tensor-core
  kernels and oneDNN's CPU kernels prefer); the neuron kernels take any dense
  time-major layout;
* on the CPU in training, more of the step is fused (``docs/performance.md``,
  "The CPU engine"): the synthetic network as one node, the FC networks'
  hidden layer with ``fc2``, the residual network's tdBN with the neuron
  layer it feeds, spike-fed linear layers by accumulation, and spikes saved
  for a backward pass in one byte.

The equations are those of ``docs/tasks.md``; ``python -m tasks.parity``
checks them like every other backend's.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.specs import (
    DSRNSpec,
    FCMnistSpec,
    FCPoissonSpec,
    SyntheticSpec,
)

from ..base import Capabilities
from ..torch_common import NetworkOutput, Recorder, StagedBatch, neuron_input
from ..torch_networks import (
    DSRN,
    BasicBlock,
    Blocks,
    FCNet,
    FunctionNeuron,
    FunctionSynapse,
    SyntheticNet,
    build_network,
    conv_over_time,
)
from . import allocator, dense_linear, multistep, neuron_linear, synaptic, tdbn_neuron
from .adam import ChannelsLastAdam
from .backend import STBPBackend
from .dense_linear import DenseLinear
from .spike_linear import SpikeLinear


class FusedBlocks(Blocks):
    """Multi-step neurons and synapse (Triton on CUDA), one-call tdBN."""

    def __init__(self, engine: str | None = None):
        self.engine = engine  # None: by device and dtype (multistep.engine_for)

    def neuron(self, kind, params):
        return FunctionNeuron(self.run_neuron, kind, params)

    def synapse(self, decay):
        return FunctionSynapse(self.run_synapse, decay)

    def run_neuron(self, kind, inputs, params, record, steps=None):
        return multistep.neuron(kind, inputs, params, record, steps, self.engine)

    def run_synapse(self, inputs, decay):
        return multistep.synapse(inputs, decay, self.engine)

    def tdbn(self, channels, alpha, v_th, eps, momentum):
        return tdbn_neuron.NumbaStatisticsTdBN(channels, alpha, v_th, eps, momentum)


class FusedFCNet(FCNet):
    """:class:`~backends.torch_networks.FCNet` with the hidden neuron layer, ``fc2`` and
    the output neuron layer as one node where it can (:mod:`backends.stbp.neuron_linear`: training on the
    CPU); its forward is FCNet's, the same equations, otherwise."""

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        h = neuron_input(self.fc1(x))
        if not neuron_linear.applies(h, self.fc2.weight):
            return self._apart(h, static, record)
        rec = Recorder(record)
        steps = self.spec.T if static else None
        s1, m1, s2, u2 = neuron_linear.neuron_linear(self.lif1.kind, h, self.lif1.params, self.fc2.weight,
                                                     self.fc2.bias, self.lif2.kind, self.lif2.params, steps, record)
        rec("lif1", (s1, m1))  # spikes as one byte each: nothing downstream needs them as floats
        rec("lif2", (s2, u2))
        return rec.output(u2 if self.spec.readout == "membrane" else s2)

    def _apart(self, h, static, record):
        """FCNet.forward from the hidden layer's input on."""
        rec = Recorder(record)
        s1 = rec("lif1", self.lif1(h, record, self.spec.T if static else None))
        s2, u2 = self.lif2(neuron_input(self.fc2(s1)), True)
        rec("lif2", (s2, u2))
        return rec.output(u2 if self.spec.readout == "membrane" else s2)


class FusedSyntheticNet(SyntheticNet):
    """:class:`~backends.torch_networks.SyntheticNet` as one node where it can
    (:mod:`backends.stbp.synaptic`: training on the CPU); SyntheticNet's forward otherwise."""

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        if not static and not record and synaptic.applies(x, self.fc1.weight):
            spec = self.spec
            out = synaptic.synaptic_net(x, self.fc1.weight, self.fc1.bias, self.readout.weight, self.readout.bias,
                                        spec.a_syn, spec.neuron_params())
            if out is not None:
                rec = Recorder(False)
                rec("hidden", (out[0], None))
                return rec.output(out[1])
        if x.dtype == torch.uint8:  # one-byte spikes (FusedSTBPBackend.stage): the layers apart read floats
            x = x.to(self.fc1.weight.dtype)
        return super().forward(x, static, record)


class FusedBasicBlock(BasicBlock):
    """:class:`~backends.torch_networks.BasicBlock` with each tdBN and the neuron layer it
    feeds (the second with the residual sum, and the shortcut's tdBN, between them) as one node where it can
    (:mod:`backends.stbp.tdbn_neuron`: training on the CPU, nothing recorded);
    BasicBlock's forward, the same equations, otherwise."""

    def forward(self, s: torch.Tensor, rec: Recorder) -> torch.Tensor:
        if rec.record or not self.training or not tdbn_neuron.applies(s):
            return super().forward(s, rec)
        h = tdbn_neuron.tdbn_neuron(self.bn1, self.lif1.kind, self.lif1.params, conv_over_time(self.conv1, s, None))
        rec(f"{self.name}.lif1", (h, None))
        if self.shortcut is None:
            residual, residual_bn = s, None
        else:  # the shortcut's tdBN runs inside the node too: its output is not kept
            residual, residual_bn = conv_over_time(self.shortcut.conv, s, None), self.shortcut.bn
        out = tdbn_neuron.tdbn_neuron(self.bn2, self.lif2.kind, self.lif2.params, conv_over_time(self.conv2, h, None),
                                      residual, residual_bn)
        return rec(f"{self.name}.lif2", (out, None))


class FusedDSRN(DSRN):
    """:class:`~backends.torch_networks.DSRN` built from :class:`FusedBasicBlock`."""

    block_type = FusedBasicBlock


# task -> (the backend's switch for it, the network fused on the CPU in training)
FUSED_NETWORKS = {
    FCMnistSpec.name: ("fuse_fc", FusedFCNet),
    FCPoissonSpec.name: ("fuse_fc", FusedFCNet),
    SyntheticSpec.name: ("fuse_synthetic", FusedSyntheticNet),
    DSRNSpec.name: ("fuse_tdbn", FusedDSRN),
}


class FusedSTBPBackend(STBPBackend):
    variant = "fused"

    def __init__(self, spec, weights, *, device="cpu", precision="fp32"):
        if device == "cuda" and not multistep.triton_installed():
            raise NotImplementedError("stbp:fused needs Triton on CUDA (pip install triton)")
        if device == "cpu" and self.keep_freed_memory:
            allocator.keep_freed_memory()  # before the model's tensors: see backends/stbp/allocator.py
        super().__init__(spec, weights, device=device, precision=precision)
        # PyTorch's fused Adam: one kernel over all parameters instead of a
        # dozen per-tensor passes (the same update; about 3x less time on the
        # CPU for fc_mnist's 795 000 parameters), channels-last weights handed
        # to it as they lie in memory (backends/stbp/adam.py)
        groups = [dict(g, fused=True, foreach=None) for g in self.optimizer.param_groups]
        self.optimizer = ChannelsLastAdam(groups)

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                "neurons": (
                    "custom: one autograd node per layer over all T with a hand-written backward (BPTT), "
                    "saving only the membrane; CUDA float32: one Triton kernel for the forward and one for "
                    "the backward (backends/stbp/kernels.py); CPU float32/float64: numba kernels, the cores "
                    "sharing blocks of neurons (backends/stbp/cpu_kernels.py); without either, the same "
                    "recurrences in a PyTorch loop"
                ),
                "synapse:synthetic": "custom: the exponential synapse as one multi-step node (Triton on CUDA, numba on the CPU)",
                "network:synthetic": (
                    "CPU training: the whole network one autograd node (numba): its binary input staged in one "
                    "byte per spike, the spikes found in one read (8 inputs per test) and their weight rows "
                    "added, synapses, neuron and readout per sample in cache"
                ),
                "network:fc": (
                    "CPU training: the hidden neuron layer, fc2 and the output neuron layer one node (numba): fc2's "
                    "output, the output neurons, the spikes' gradient and fc2's weight gradient computed inside the "
                    "hidden neuron's passes; a static input kept instead of the hidden membranes (computed again "
                    "in the backward pass)"
                ),
                "spike linear layers": (
                    "CPU: a linear layer fed by spikes with at least 32 outputs adds weight rows at the spikes and "
                    "keeps their positions for the weight gradient (fc_mnist_poisson's fc1)"
                ),
                "saved spikes": "CPU training: spikes a layer keeps for its backward pass kept in one byte",
                "optimizer": ("torch.optim.Adam(fused=True), its kernel called directly once every parameter has "
                              "its state (backends/stbp/adam.py: the same update)"),
                "tdbn": (
                    "torch batch_norm on the time-folded [T*B, C, H, W] tensor with weight lambda*alpha*V_th "
                    "(one fused kernel for statistics and normalisation; unbiased running variance); the "
                    "stem's static image is convolved and normalised once and read at every step; CPU training: "
                    "each block's tdBN (with the residual sum and the shortcut's tdBN) and the neuron it feeds "
                    "one node (numba), keeping tdBN's input and recomputing the membranes in the backward pass"
                ),
                "layout": ("channels-last convolutions (cuDNN's tensor-core kernels on CUDA, oneDNN's fastest on the "
                           "CPU; the other PyTorch backends run NCHW): the same equations at the same precision, "
                           "the convolutions' sums in another order; the tdBN + neuron node reads and writes "
                           "channels-last steps"),
                "dense products": ("CPU float32: forward, input and weight gradients by oneDNN "
                                   "(torch.ops.mkldnn._linear_pointwise) instead of MKL's torch.mm, except on Intel's "
                                   "CPUs, where MKL is as fast or faster (the device record says which ran)"),
                "host memory": "CPU: malloc keeps freed blocks below 1 GiB for the next step (no page faults)",
                "surrogates": "the same formulas as stbp, inside the kernels",
            },
            notes=(
                "Our STBP code made fast: the networks of stbp with fused multi-step neurons (Triton on CUDA, "
                "numba on the CPU). Falls back to PyTorch loops where neither can run; CUDA graphs and "
                "torch.compile are not used. docs/performance.md, 'The CPU engine', says what runs where."
            ),
        )

    # On the CPU, linear layers fed by spikes accumulate weight columns at the
    # spikes (backends/stbp/spike_linear.py); False: every product dense.
    spike_linear = True
    # On the CPU, the FC networks' hidden layer and fc2 as one node in training
    # (backends/stbp/neuron_linear.py); False: apart.
    fuse_fc = True
    # On the CPU, each tdBN of dsrn_tdbn's blocks and the neuron layer it feeds as one
    # node in training (backends/stbp/tdbn_neuron.py); False: apart.
    fuse_tdbn = True
    # On the CPU, the synthetic network as one node in training
    # (backends/stbp/synaptic.py); False: its layers apart.
    fuse_synthetic = True
    # On the CPU, the synthetic network's binary input spikes staged in one
    # byte each, which its one node reads (backends/stbp/synaptic.py); False: as floats.
    spike_input_bytes = True
    # On the CPU, spikes saved for a backward pass are kept in one byte
    # (multistep.spike_bytes); False: as floats.
    spike_bytes = True
    # On the CPU, float32 dense products by oneDNN (backends/stbp/dense_linear.py):
    # None, where it is the faster choice (not on Intel's CPUs, where MKL is at its
    # best); True: always; False: torch.mm (MKL), as every other PyTorch backend.
    onednn_linear: bool | None = None

    # On the CPU, dsrn_tdbn's convolutions channels-last (oneDNN's fastest layout;
    # docs/performance.md, "The CPU engine"); False: NCHW, as every other PyTorch backend.
    channels_last_cpu = True

    # On the CPU, malloc keeps freed blocks for the next step (backends/stbp/allocator.py);
    # False: glibc's defaults, as every other backend.
    keep_freed_memory = True

    @property
    def uses_onednn(self) -> bool:
        """Whether this backend's float32 dense CPU products go to oneDNN."""
        return dense_linear.preferred() if self.onednn_linear is None else bool(self.onednn_linear)

    def build_model(self) -> nn.Module:
        fused = FUSED_NETWORKS.get(self.spec.name)
        if self.device == "cpu" and fused is not None and getattr(self, fused[0]):
            model = fused[1](self.spec, FusedBlocks())
        else:
            model = build_network(self.spec, FusedBlocks())
        if isinstance(self.spec, DSRNSpec) and (self.device == "cuda" or self.channels_last_cpu):
            # channels-last convolutions: cuDNN's tensor-core kernels and oneDNN's
            # CPU kernels prefer them; the neuron kernels read any dense time-major
            # layout, the tdBN + neuron node NCHW and channels-last steps.
            model = model.to(memory_format=torch.channels_last)
        if self.device == "cpu":
            self._replace_linear_layers(model)
        return model

    def _replace_linear_layers(self, model: nn.Module) -> None:
        """Spike-fed linear layers by accumulation, the other dense products by oneDNN."""
        for synapse in self.spec.synapses():
            layer = getattr(model, synapse.name, None)
            if type(layer) is not nn.Linear:
                continue
            inside = isinstance(model, FusedFCNet) and synapse.name == "fc2"  # run inside the fused node
            # with few outputs a dense product costs about what listing the
            # spikes does (measured: docs/performance.md)
            wide = synapse.out_shape[0] >= SpikeLinear.MIN_OUTPUTS
            if self.spike_linear and synapse.kind == "linear" and synapse.inputs == "spikes" and wide and not inside:
                spiking = SpikeLinear.like(layer)
                spiking.onednn = self.uses_onednn  # its dense fallback's products
                setattr(model, synapse.name, spiking)
            elif self.uses_onednn and not inside:
                setattr(model, synapse.name, DenseLinear.like(layer))

    def stage(self, batch):
        staged = super().stage(batch)
        # only where the one node reads it (numba, float32/float64, no autocast); else each step would convert back
        if (isinstance(self.model, FusedSyntheticNet) and self.spike_input_bytes and self.precision in ("fp32", "fp64")
                and not staged.static and staged.x.device.type == "cpu" and multistep.numba_installed()):
            from .cpu_kernels import torch_spike_bytes

            x8 = torch_spike_bytes(staged.x)  # None: not spikes
            if x8 is not None:
                staged = StagedBatch(x8, staged.y, staged.static)
        return staged

    def _forward(self, batch, record):
        # training on the CPU: spikes a layer keeps for its backward pass are kept in one byte
        if self.device == "cpu" and self.spike_bytes and self.model.training and torch.is_grad_enabled():
            with multistep.spike_bytes.saving():
                return super()._forward(batch, record)
        return super()._forward(batch, record)

    def device_info(self):
        info = super().device_info()
        info["neuron_engine"] = multistep.engine(self.device == "cuda", self.dtype)
        if info["neuron_engine"] == "numba":
            from . import cpu_kernels

            info.update(cpu_kernels.thread_info())
        if self.device == "cpu":
            info["dense_products"] = dense_linear.engine(self.dtype) if self.uses_onednn else "torch.mm"
            info["host_allocator"] = allocator.policy()
        return info

