"""What the PyTorch backends' tests share: counting the reads of a tensor value
on the host, each of which would be a device synchronisation on CUDA.

torch is imported here: a test file imports this after its own
``pytest.importorskip("torch")``.
"""

from __future__ import annotations

from torch.profiler import ProfilerActivity, profile

# the two ops through which a tensor's value reaches Python (bool(t), t.item())
HOST_READS = ("aten::is_nonzero", "aten::_local_scalar_dense")


def host_reads(fn) -> dict[str, int]:
    """How often ``fn()`` reads a tensor value on the host, by op ({} for never)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key: e.count for e in prof.key_averages() if e.key in HOST_READS}


def network_host_reads(backend, batch) -> dict[str, int]:
    """:func:`host_reads` of a forward and backward pass of ``backend``'s network on
    ``batch`` (after one pass outside the count: first-call set-up is not the network's)."""
    x, _ = backend._inputs(batch)

    def forward_backward():
        out = backend.model(x, static=batch.static, record=False)
        (out.readout.sum() + sum(s.sum() for s in out.spikes.values())).backward()

    forward_backward()
    return host_reads(forward_backward)
