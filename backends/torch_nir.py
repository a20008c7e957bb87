"""What the PyTorch frameworks' NIR readers share: the two calls a NIR graph is timed by."""

from __future__ import annotations

from typing import Callable

import torch


def timed_calls(model: torch.nn.Module, forward: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], Callable[[], None]]:
    """(inference, forward + backward) of ``forward``, a closure over input staged once that runs the
    imported ``model`` from its initial state; the backward pass is of the output's mean."""

    def infer() -> None:
        with torch.no_grad():
            forward()

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        forward().mean().backward()

    return infer, forward_backward
