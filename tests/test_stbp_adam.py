"""backends/stbp/adam.py: Adam for channels-last weights."""

import pytest

torch = pytest.importorskip("torch")


def test_channels_last_adam_is_fused_adam_to_the_bit(monkeypatch):
    """stbp:fused's Adam hands PyTorch's fused kernel channels-last weights as the contiguous
    permutation of their memory: the same parameters and moments, to the bit, as
    ``torch.optim.Adam(fused=True)``, the weights still channels-last."""
    from backends.stbp import adam

    assert adam._KNOWN  # the PyTorch this runs on has the private method it extends
    seen = []
    fused = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda params, *a, **k: seen.append(
        [t.is_contiguous() for t in params]) or fused(params, *a, **k))
    results = []
    for cls in (torch.optim.Adam, adam.ChannelsLastAdam):
        g = torch.Generator().manual_seed(1)
        weight = torch.nn.Parameter(torch.randn(6, 4, 3, 3, generator=g).contiguous(memory_format=torch.channels_last))
        bias = torch.nn.Parameter(torch.randn(6, generator=g))
        opt = cls([weight, bias], lr=0.01, fused=True)
        for _ in range(3):
            weight.grad = torch.randn(weight.shape, generator=g).contiguous(memory_format=torch.channels_last)
            bias.grad = torch.randn(6, generator=g)
            opt.step()
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
        state = opt.state[weight]
        results.append([weight.detach().clone(), bias.detach().clone(), state["exp_avg"], state["exp_avg_sq"]])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    assert seen[:3] == [[False, True]] * 3 and seen[3:] == [[True, True]] * 3


def test_adam_calls_the_fused_kernel_itself_once_every_parameter_has_state():
    """After the first step (which makes the state) stbp:fused's Adam calls the fused kernel
    without Optimizer.step's wrappers -- the same parameters, moments and step counts to the
    bit as ``torch.optim.Adam(fused=True)`` over steps that change the learning rate; a hook,
    a closure or a parameter without a gradient sends a step the ordinary way (the hook runs)."""
    from backends.stbp import adam

    results, ordinary = [], []
    for cls in (torch.optim.Adam, adam.ChannelsLastAdam):
        g = torch.Generator().manual_seed(2)
        w1 = torch.nn.Parameter(torch.randn(7, 5, generator=g))
        w2 = torch.nn.Parameter(torch.randn(3, generator=g))
        opt = cls([{"params": [w1]}, {"params": [w2], "lr": 0.05}], lr=0.01, betas=(0.8, 0.99),
                  weight_decay=0.1, fused=True)
        if cls is adam.ChannelsLastAdam:
            original = opt._ordinary_step
            opt._ordinary_step = lambda closure: ordinary.append(closure) or original(closure)
        hooked = []
        for step in range(6):
            w1.grad = torch.randn(w1.shape, generator=g)
            w2.grad = None if step == 3 else torch.randn(w2.shape, generator=g)
            opt.param_groups[0]["lr"] = 0.01 * (step + 1)
            if step == 4:
                handle = opt.register_step_pre_hook(lambda *a: hooked.append(1))
            opt.step()
            if step == 4:
                handle.remove()
        assert hooked == [1]
        assert opt.step(lambda: torch.tensor(1.0)) == 1.0
        results.append([w1.detach().clone(), w2.detach().clone()]
                       + [opt.state[w][k] for w in (w1, w2) for k in ("exp_avg", "exp_avg_sq", "step")])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    # the ordinary path: the first step (no state yet), the step without w2's gradient, the hook's, the closure's
    assert len(ordinary) == 4 and ordinary[-1] is not None
