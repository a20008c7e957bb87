"""Memory layouts the fused neuron kernels (Triton and numba) take.

Element ``i`` of step ``t`` lives at ``t * M + i`` of every tensor, where
``M`` is the number of neurons of one step: tensors must be dense and
time-major, in any order of the other dimensions (channels-last included),
and share one layout.  Importing this module imports only torch.
"""

from __future__ import annotations

import torch


def dense(x: torch.Tensor) -> bool:
    """Whether ``x`` fills its storage without gaps or overlaps (any order of dimensions)."""
    expected = 1
    for d in sorted(range(x.dim()), key=lambda d: x.stride(d)):
        if x.size(d) != 1 and x.stride(d) != expected:
            return False
        expected *= x.size(d)
    return True


def time_major(x: torch.Tensor) -> torch.Tensor:
    """``x`` [T, ...] dense with step t at ``t * M`` (a copy only when it is not)."""
    if dense(x) and (x.shape[0] == 1 or x.stride(0) == x[0].numel()):
        return x
    return x.contiguous()


def channels_last_steps(x: torch.Tensor) -> bool:
    """Whether ``x`` [T, B, C, H, W] is channels-last at every step: dense, C fastest, then W, H, B, T."""
    return x.permute(0, 1, 3, 4, 2).is_contiguous()


def steps_of_images(x: torch.Tensor) -> torch.Tensor:
    """``x`` [T, B, C, H, W] as it is when NCHW or channels-last at every step, else an NCHW copy."""
    return x if x.is_contiguous() or channels_last_steps(x) else x.contiguous()


def static(x: torch.Tensor) -> torch.Tensor:
    return x if dense(x) else x.contiguous()


def like(reference: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``t`` in ``reference``'s layout (copied only when the strides differ)."""
    if t.stride() == reference.stride():
        return t
    return torch.empty_strided(reference.shape, reference.stride(), dtype=t.dtype, device=t.device).copy_(t)


def over_time(x: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
    """An empty ``[T, *x.shape]`` tensor whose every step has ``x``'s layout."""
    return torch.empty_strided((T,) + tuple(x.shape), (x.numel(),) + tuple(x.stride()), dtype=dtype, device=x.device)


def empty_like_layout(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An empty tensor with ``t``'s shape and strides."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype if dtype is None else dtype, device=t.device)

