"""The NumPy backward pass: by hand, against finite differences, and what each backend pins.

Finite differences need a differentiable network, and a spiking one is not:
its forward is a step.  So the tests replace each task's Heaviside by a
smooth function whose derivative *is* the task's surrogate (the integral of
h); the backward code is unchanged, and every gradient it computes must then
be the true derivative of the network's loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks import parity, reference
from tasks import reference_grad as rg
from tasks.data import Batch
from tasks.specs import get_spec
from tasks.weights import initial_weights, trainable_names


def col(*values):
    """A [T, 1] array: one neuron, one sample."""
    return np.array(values, dtype=np.float64).reshape(-1, 1)


def heaviside_with(derivative):
    return rg.SpikeFunction(rg.heaviside, derivative)


# ------------------------------------------------------------ smooth stand-ins
def smooth_spike(spec) -> rg.SpikeFunction:
    """A smooth spike whose derivative is ``spec``'s surrogate (its integral from -inf)."""
    surrogate = rg.spike_function(spec).derivative
    if spec.name == "synthetic":
        alpha, w = spec.surrogate_alpha, spec.surrogate_width

        def fire(x):  # integral of alpha max(0, w - |x|): piecewise quadratic, C1
            left = alpha * (w + np.clip(x, -w, 0.0)) ** 2 / 2.0
            right = alpha * (w ** 2 - (w - np.clip(x, 0.0, w)) ** 2) / 2.0
            return left + right
    elif spec.name == "fc_mnist":
        alpha = spec.surrogate_alpha

        def fire(x):
            return 0.5 + np.arctan(math.pi * alpha * x / 2.0) / math.pi
    elif spec.name in ("fc_mnist_poisson", "lif_layer"):
        alpha = spec.surrogate_alpha

        def fire(x):
            return 1.0 / (1.0 + np.exp(-alpha * x))
    elif spec.name == "dsrn_tdbn":
        a, center = spec.surrogate_a, rg.surrogate_center(spec)

        def fire(x):  # a ramp across the window: kinks at its edges only
            return np.clip((x - center + a) / (2.0 * a), 0.0, 1.0)
    else:
        raise KeyError(spec.name)
    return rg.SpikeFunction(fire, surrogate)


@pytest.mark.parametrize("task", ["synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer"])
def test_the_smooth_stand_in_integrates_the_surrogate(task):
    spike = smooth_spike(small_case(task)[0])
    x = np.linspace(-1.7, 1.7, 341) + 1e-3  # off the rectangular window's edges
    eps = 1e-6
    numeric = (spike.fire(x + eps) - spike.fire(x - eps)) / (2 * eps)
    np.testing.assert_allclose(numeric, spike.derivative(x), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------ small cases
def small_case(task: str, **extra):
    """The task at a tiny size, with random inputs and weights scaled so layers are active."""
    gen = np.random.default_rng(7)
    if task == "synthetic":
        spec = get_spec(task).with_overrides(T=30, batch_size=4, input_probability=0.2, **extra)
        x = (gen.random((spec.T, 4, spec.n_in)) < 0.2).astype(np.float64)
        batch = Batch(x, gen.integers(0, 2, 4), static=False)
        gains = {"fc1.weight": 2.0}
    elif task == "fc_mnist":
        spec = get_spec(task).with_overrides(T=5, batch_size=3, n_hidden=12, **extra)
        batch = Batch(gen.random((3, 784)), gen.integers(0, 10, 3), static=True)
        gains = {"fc1.weight": 2.0, "fc2.weight": 2.0}
    elif task == "fc_mnist_poisson":
        spec = get_spec(task).with_overrides(T=8, batch_size=3, n_hidden=12, **extra)
        batch = Batch((gen.random((spec.T, 3, 784)) < 0.5).astype(np.float64), gen.integers(0, 10, 3), static=False)
        gains = {"fc1.weight": 50.0, "fc2.weight": 300.0}  # tau = 100: slow to charge
    elif task == "lif_layer":
        spec = get_spec(task).with_overrides(T=10, batch_size=2, neurons=6, **extra)
        batch = Batch(gen.random((spec.T, 2, 6)), np.zeros(2, np.int64), static=False)
        gains = {"fc.weight": 3.0}
    elif task == "dsrn_tdbn":
        # 8 x 8 images and 2..16 channels: the same 19 spiking layers, little arithmetic
        spec = get_spec(task).with_overrides(T=2, batch_size=2, width=1 / 32, image_size=8, **extra)
        batch = Batch(gen.standard_normal((2, 1, 8, 8)), gen.integers(0, 10, 2), static=True)
        gains = {"fc1.weight": 3.0, "fc2.weight": 3.0}
    else:
        raise KeyError(task)
    weights = initial_weights(spec)
    for name, gain in gains.items():
        weights[name] = weights[name] * gain
    # biases and tdBN's lambda / beta start at 0 / 1: move them off so every term is exercised
    for name in trainable_names(weights):
        if name.endswith(".bias") or ".bn" in name:
            weights[name] = weights[name] + 0.1 * gen.standard_normal(weights[name].shape)
    return spec, weights, batch


def kinks(spec, result) -> list[np.ndarray]:
    """Which side of each point where the smooth network is not differentiable every neuron-step is on.

    fc_mnist's reset H(U[t-1] - V_th) stays a step (it has no gradient); the
    ramp standing in for dsrn_tdbn's spike bends at the window's edges.  The
    other stand-ins are continuously differentiable.
    """
    if spec.name == "fc_mnist":
        return [u > spec.v_th for u in result.membranes.values()]
    if spec.name == "dsrn_tdbn":
        center = rg.surrogate_center(spec)
        return [np.abs(u - spec.v_th - center) < spec.surrogate_a for u in result.membranes.values()]
    return []


TASKS = ["synthetic", "fc_mnist", "fc_mnist_poisson", "lif_layer", "dsrn_tdbn"]


@pytest.mark.parametrize("task", TASKS)
def test_every_layer_of_the_small_cases_fires_and_stays_silent_somewhere(task):
    """A layer that never (or always) spikes would leave resets and surrogates unchecked."""
    spec, weights, batch = small_case(task)
    out = reference.forward(spec, weights, batch)
    for layer in spec.layer_names():
        assert 0.0 < out.spikes[layer].mean() < 1.0, layer


@pytest.mark.parametrize("task", TASKS)
def test_the_forward_pass_is_the_reference(task):
    """With Heaviside spikes the backward module runs exactly tasks.reference's forward."""
    spec, weights, batch = small_case(task)
    got = rg.loss_and_gradients(spec, weights, batch)
    want = reference.forward(spec, weights, batch)
    assert got.loss == pytest.approx(want.loss, rel=1e-13)
    for layer in spec.layer_names():
        np.testing.assert_array_equal(got.spikes[layer], want.spikes[layer])
        np.testing.assert_allclose(got.membranes[layer], want.membranes[layer], rtol=1e-13, atol=1e-13)
    assert sorted(got.gradients) == sorted(trainable_names(weights))
    for name, g in got.gradients.items():
        assert g.shape == weights[name].shape, name


@pytest.mark.parametrize("task", TASKS)
def test_every_gradient_against_finite_differences(task):
    """The directional derivative along a random direction of every weight tensor, and a few single entries."""
    spec, weights, batch = small_case(task)
    spike = smooth_spike(spec)
    result = rg.loss_and_gradients(spec, weights, batch, spike=spike)
    gen = np.random.default_rng(11)

    base = kinks(spec, result)

    def loss_at(name, delta):
        moved = dict(weights)
        moved[name] = weights[name] + delta
        out = rg.loss_and_gradients(spec, moved, batch, spike=spike)
        # a finite difference across a kink measures the jump, not the derivative
        assert all(np.array_equal(a, b) for a, b in zip(kinks(spec, out), base)), f"{name}: a kink is crossed"
        return out.loss

    eps = 1e-7
    for name in trainable_names(weights):
        grad = result.gradients[name]
        assert np.abs(grad).max() > 0, f"{name}: zero gradient, nothing is checked"
        direction = gen.standard_normal(weights[name].shape)
        numeric = (loss_at(name, eps * direction) - loss_at(name, -eps * direction)) / (2 * eps)
        analytic = float((grad * direction).sum())
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9), name
        # the largest entry alone: a direction can hide an error that cancels
        index = np.unravel_index(np.argmax(np.abs(grad)), grad.shape)
        unit = np.zeros_like(grad)
        unit[index] = 1.0
        numeric = (loss_at(name, eps * unit) - loss_at(name, -eps * unit)) / (2 * eps)
        assert grad[index] == pytest.approx(numeric, rel=1e-6, abs=1e-9), (name, index)


def test_the_surrogate_centre_changes_the_gradient():
    """--surrogate-center zero is not a no-op in the reference (so the backends' pin below means something)."""
    spec, weights, batch = small_case("dsrn_tdbn")
    zero = spec.with_overrides(surrogate_center="zero")
    a = rg.gradients(spec, weights, batch)
    b = rg.gradients(zero, weights, batch)
    assert any(not np.allclose(a[n], b[n]) for n in a)
    # the window of "zero" is |U| < a, i.e. x = U - V_th within a of -V_th
    h = rg.spike_function(zero).derivative
    np.testing.assert_array_equal(h(np.array([-0.4 - 0.49, -0.4 + 0.49, 0.1, -0.4 - 0.5])), [1.0, 1.0, 0.0, 0.0])


# ------------------------------------------------------------ components, by hand
def test_exponential_synapse_backward_by_hand():
    # I1 = x1, I2 = x1/2 + x2, I3 = x1/4 + x2/2 + x3; L = I1 + 2 I3
    g = rg.exponential_synapse_backward(col(1.0, 0.0, 2.0), 0.5)
    np.testing.assert_allclose(g[:, 0], [1.0 + 2 * 0.25, 2 * 0.5, 2.0])


def test_soft_reset_backward_by_hand():
    """synthetic's neuron over two steps; the reset carries the spike's gradient, scaled by 1 / V_th."""
    a, vth = 0.5, 2.0
    h = lambda x: 0.3 * np.maximum(0.0, 1.0 - np.abs(x))  # noqa: E731
    spike = heaviside_with(h)
    s, v, cache = rg.soft_reset_lif(col(4.0, 4.0), a, vth, spike)
    # V1 = 0.5 * 4 = 2, x1 = 0 (no spike, h = 0.3); V2 = 0.5 * (2 - 0) + 2 = 3, x2 = 0.5 (spike, h = 0.15)
    np.testing.assert_allclose(v[:, 0], [2.0, 3.0])
    np.testing.assert_array_equal(s[:, 0], [0.0, 1.0])
    g = rg.soft_reset_lif_backward(col(1.0, 1.0), cache, spike)  # L = S1 + S2
    dS1_dI1 = h(0.0) / vth * (1 - a)
    dV2_dI1 = a * ((1 - a) - vth * dS1_dI1)  # through V1 and through the reset -V_th S1
    dS2_dI1 = h(0.5) / vth * dV2_dI1
    dS2_dI2 = h(0.5) / vth * (1 - a)
    np.testing.assert_allclose(g[:, 0], [dS1_dI1 + dS2_dI1, dS2_dI2])
    np.testing.assert_allclose(g[:, 0], [0.088125, 0.0375])


def test_subtractive_backward_by_hand():
    """fc_mnist's neuron: the reset is decided by the previous membrane and carries no gradient."""
    beta, vth = 0.5, 1.0
    h = lambda x: 1.0 / (1.0 + (math.pi * x) ** 2)  # noqa: E731
    spike = heaviside_with(h)
    s, u, cache = rg.subtractive_lif(col(1.5, 0.6), beta, vth, spike)
    # U1 = 1.5 (spike); U2 = 0.75 + 0.6 - 1 = 0.35 (the reset of U1's spike)
    np.testing.assert_allclose(u[:, 0], [1.5, 0.35])
    np.testing.assert_array_equal(s[:, 0], [1.0, 0.0])
    # L = S1 + S2 + U2: dU2/dX1 = beta, with nothing from the reset
    g = rg.subtractive_lif_backward(col(1.0, 1.0), cache, spike, grad_membranes=col(0.0, 1.0))
    np.testing.assert_allclose(g[:, 0], [h(0.5) + beta * (h(-0.65) + 1.0), h(-0.65) + 1.0])


def test_hard_reset_backward_by_hand():
    """fc_mnist_poisson's neuron: V = H (1 - S) carries gradient through S (the term -H dS)."""
    tau, vth = 2.0, 1.0
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    h = lambda x: 4 * sig(4 * x) * (1 - sig(4 * x))  # noqa: E731
    spike = heaviside_with(lambda x: rg.sigmoid_derivative(x, 4.0))
    s, hh, cache = rg.hard_reset_lif(col(3.0, 1.0), tau, vth, spike)
    # H1 = 1.5 (spike, V1 = 0); H2 = 0 + (1 - 0) / 2 = 0.5
    np.testing.assert_allclose(hh[:, 0], [1.5, 0.5])
    np.testing.assert_array_equal(s[:, 0], [1.0, 0.0])
    g = rg.hard_reset_lif_backward(col(1.0, 1.0), cache, spike, grad_membranes=col(0.0, 1.0))  # L = S1 + S2 + H2
    dH1_dX1 = 1 / tau
    dV1_dX1 = dH1_dX1 * (1 - 1) - 1.5 * h(0.5) * dH1_dX1  # V1 = H1 (1 - S1)
    dL_dH2 = h(-0.5) + 1.0
    np.testing.assert_allclose(g[:, 0], [h(0.5) * dH1_dX1 + dL_dH2 * (1 - 1 / tau) * dV1_dX1, dL_dH2 / tau])


def test_stbp_backward_by_hand():
    """dsrn_tdbn's neuron: U2 = tau U1 (1 - S1) + X2 carries gradient through S1 (the term -tau U1 dS1)."""
    tau, vth = 0.5, 1.0
    spike = heaviside_with(lambda x: rg.rectangular(x, 0.5, 0.0))
    s, u, cache = rg.stbp_lif(col(1.2, 0.2), tau, vth, spike)
    # U1 = 1.2 (spike, h = 1); U2 = 0.5 * 1.2 * 0 + 0.2 = 0.2 (h = 0: outside |U - 1| < 0.5)
    np.testing.assert_allclose(u[:, 0], [1.2, 0.2])
    np.testing.assert_array_equal(s[:, 0], [1.0, 0.0])
    g = rg.stbp_lif_backward(col(1.0, 1.0), cache, spike, grad_membranes=col(0.0, 1.0))  # L = S1 + S2 + U2
    # dL/dX1 = dS1/dX1 + dU2/dX1 = 1 + (tau (1 - S1) - tau U1 dS1/dX1) = 1 - 0.6
    np.testing.assert_allclose(g[:, 0], [0.4, 1.0])


def test_rectangular_window_is_open():
    h = rg.rectangular(np.array([-0.5, -0.4999, 0.0, 0.4999, 0.5]), 0.5, 0.0)
    np.testing.assert_array_equal(h, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_sigmoid_surrogate_has_no_overflow():
    with np.errstate(over="raise"):
        h = rg.sigmoid_derivative(np.array([-1e4, 0.0, 1e4]), 4.0)
    np.testing.assert_allclose(h, [0.0, 1.0, 0.0])


def test_conv2d_backward_against_finite_differences():
    gen = np.random.default_rng(3)
    for stride, padding, k in ((1, 1, 3), (2, 1, 3), (2, 0, 1)):
        x = gen.standard_normal((2, 3, 7, 7))
        w = gen.standard_normal((4, 3, k, k))
        out = rg.conv2d(x, w, stride, padding)
        g = gen.standard_normal(out.shape)
        grad_x, grad_w = rg.conv2d_backward(g, x, w, stride, padding)
        assert grad_x.shape == x.shape and grad_w.shape == w.shape
        # conv2d is linear in each argument: <g, conv(dx, w)> = <grad_x, dx> exactly
        dx, dw = gen.standard_normal(x.shape), gen.standard_normal(w.shape)
        assert float((g * rg.conv2d(dx, w, stride, padding)).sum()) == pytest.approx(float((grad_x * dx).sum()))
        assert float((g * rg.conv2d(x, dw, stride, padding)).sum()) == pytest.approx(float((grad_w * dw).sum()))
        np.testing.assert_allclose(out, reference.conv2d(x, w, stride, padding))


def test_tdbn_backward_goes_through_the_batch_statistics():
    gen = np.random.default_rng(4)
    x = gen.standard_normal((2, 3, 4, 5, 5)) * 2.0 + 1.0
    w = {"bn.weight": gen.standard_normal(4), "bn.bias": gen.standard_normal(4)}
    g = gen.standard_normal(x.shape)
    out, cache = rg.tdbn(x, w, "bn", 0.7, 0.4, 1e-5)
    want, _, _ = reference.tdbn(x, w, "bn", 0.7, 0.4, 1e-5, True)
    np.testing.assert_allclose(out, want)
    grads = {}
    grad_x = rg.tdbn_backward(g, cache, w, "bn", grads)
    eps, dx = 1e-6, gen.standard_normal(x.shape)
    loss = lambda xx: float((g * rg.tdbn(xx, w, "bn", 0.7, 0.4, 1e-5)[0]).sum())  # noqa: E731
    numeric = (loss(x + eps * dx) - loss(x - eps * dx)) / (2 * eps)
    assert float((grad_x * dx).sum()) == pytest.approx(numeric, rel=1e-7)
    # the statistics' part is not negligible: with them held constant the gradient differs
    held = g * (w["bn.weight"] * 0.7 * 0.4)[:, None, None] * cache.inv_std[:, None, None]
    assert abs(float((held * dx).sum()) - numeric) > 1e-3 * abs(numeric)
    # each output channel's sum of gradients with respect to its input is zero (the mean is subtracted)
    np.testing.assert_allclose(grad_x.sum(axis=(0, 1, 3, 4)), 0.0, atol=1e-10)


@pytest.mark.parametrize("task", TASKS)
def test_loss_gradient_against_finite_differences(task):
    """d(loss)/d(readout) of every task's loss."""
    spec, _, batch = small_case(task)
    gen = np.random.default_rng(5)
    readout = gen.random((spec.T, batch.size, spec.n_classes if task != "lif_layer" else spec.neurons))
    loss, g = rg.loss_and_readout_grad(spec, readout, np.asarray(batch.y))
    want, _ = reference.loss_and_scores(spec, readout, readout, np.asarray(batch.y))
    assert loss == pytest.approx(want, rel=1e-13)
    eps, d = 1e-6, gen.standard_normal(readout.shape)
    numeric = (rg.loss_and_readout_grad(spec, readout + eps * d, batch.y)[0]
               - rg.loss_and_readout_grad(spec, readout - eps * d, batch.y)[0]) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(numeric, rel=1e-7)


# ------------------------------------------------------------ Adam and the loss curve
def test_adam_by_hand():
    adam = rg.Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    w = adam.step({"w": np.array([1.0])}, {"w": np.array([0.5])})
    # step 1: m_hat = g and v_hat = g^2, so the step is lr g / (|g| + eps)
    np.testing.assert_allclose(w["w"], [1.0 - 0.1 * 0.5 / (0.5 + 1e-8)], rtol=1e-15)
    w = adam.step(w, {"w": np.array([-1.0])})
    m = 0.9 * 0.05 + 0.1 * -1.0
    v = 0.999 * 0.00025 + 0.001 * 1.0
    step = 0.1 * (m / (1 - 0.9 ** 2)) / (math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(w["w"], [1.0 - 0.1 * 0.5 / (0.5 + 1e-8) - step], rtol=1e-14)


def _adam_trajectory_inputs():
    """Gradients of several sizes over 5 steps, some as small as eps, where eps's placement matters."""
    gen = np.random.default_rng(6)
    w0 = gen.standard_normal(6)
    grads = [gen.standard_normal(6) * np.array([1.0, 1e-3, 1e-6, 1e-8, 3e-9, 0.0]) for _ in range(5)]
    return w0, grads


def _reference_trajectory(lr, betas, eps):
    w0, grads = _adam_trajectory_inputs()
    adam = rg.Adam(lr, betas, eps)
    w, out = {"w": w0}, []
    for g in grads:
        w = adam.step(w, {"w": g})
        out.append(w["w"])
    return np.array(out)


def test_adam_is_torch_adam():
    """stbp, snnTorch and SpikingJelly train with torch.optim.Adam."""
    torch = pytest.importorskip("torch")
    w0, grads = _adam_trajectory_inputs()
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    got = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        got.append(p.detach().numpy().copy())
    np.testing.assert_allclose(np.array(got), _reference_trajectory(1e-3, (0.9, 0.999), 1e-8), rtol=1e-13, atol=0)
    # the eps-hat placement (eps added before the bias correction) would differ visibly here
    hat = rg.Adam(1e-3, (0.9, 0.999), 1e-8 / math.sqrt(1 - 0.999))
    assert not np.allclose(hat.step({"w": w0}, {"w": grads[0]})["w"], got[0], rtol=1e-9, atol=0)


def test_adam_is_braintools_adam():
    """brainstate trains with braintools.optim.Adam (optax's scale_by_adam)."""
    braintools = pytest.importorskip("braintools")
    brainstate = pytest.importorskip("brainstate")
    import jax
    import jax.numpy as jnp

    w0, grads = _adam_trajectory_inputs()
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # as the backend does for fp64
    try:
        param = brainstate.ParamState(jnp.asarray(w0, dtype=jnp.float64))
        opt = braintools.optim.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        opt.register_trainable_weights({"w": param})
        got = []
        for g in grads:
            opt.update({"w": jnp.asarray(g, dtype=jnp.float64)})
            got.append(np.asarray(param.value))
    finally:
        jax.config.update("jax_enable_x64", x64)
    assert got[-1].dtype == np.float64
    np.testing.assert_allclose(np.array(got), _reference_trajectory(1e-3, (0.9, 0.999), 1e-8), rtol=1e-12, atol=0)


def test_loss_curve_is_adam_on_the_reference_gradients():
    spec, weights, batch = small_case("synthetic")
    batches = [batch] * 3
    curve = rg.loss_curve(spec, weights, batches)
    assert curve[0] == pytest.approx(reference.forward(spec, weights, batch).loss, rel=1e-14)
    # the second loss is the first step's weights' loss
    adam = rg.Adam(spec.lr, spec.adam_betas, spec.adam_eps)
    moved = adam.step(weights, rg.gradients(spec, weights, batch))
    assert curve[1] == pytest.approx(reference.forward(spec, moved, batch).loss, rel=1e-14)
    assert curve[1] != curve[0]


# ------------------------------------------------------------ what each backend pins
import backends as _registry  # noqa: E402
from tests.backend_contract import assert_parity  # noqa: E402

# every eager backend: a new one is checked by registering; a compiled variant computes its eager
# backend's network, and is checked on the tasks the smoke profile compiles (test_backend_contract.py)
BACKENDS = [n for n in _registry.installable_names() if not _registry.entry(n).compiles]


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_takes_the_gradient_through_tdbn_statistics_and_the_shifted_window(name):
    """dsrn_tdbn with the window centred on zero: tdBN's statistics carry gradient and the
    surrogate is |U| < a (the parity case covers the threshold-centred window)."""
    import backends as registry
    from tasks.errors import BackendUnavailable

    try:
        cls = registry.load(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    if "fp64" not in cls.capabilities().precisions:
        pytest.skip(f"{name} has no float64")
    if "dsrn_tdbn" not in cls.capabilities().tasks:
        pytest.skip(f"{name} cannot express dsrn_tdbn")
    spec, weights, batch = small_case("dsrn_tdbn", surrogate_center="zero")
    backend = cls(spec, weights, device="cpu", precision="fp64")
    got = backend.gradients(batch)
    want = rg.gradients(spec, weights, batch)
    assert sorted(got) == sorted(want)
    for k in want:
        assert parity._rel(got[k], want[k]) < 1e-9, k


# ------------------------------------------------------------ parity uses it
def test_parity_checks_stbp_against_the_numpy_gradients(monkeypatch):
    """stbp is no longer its own reference: a wrong NumPy gradient or loss curve fails its row."""
    row = parity.check_backend("lif_layer", "stbp")
    assert_parity(row)
    real_gradients, real_curve = rg.gradients, rg.loss_curve
    monkeypatch.setattr(rg, "gradients", lambda *a: {k: 2.0 * v for k, v in real_gradients(*a).items()})
    monkeypatch.setattr(rg, "loss_curve", lambda *a: 1.01 * real_curve(*a))
    row = parity.check_backend("lif_layer", "stbp")
    assert row.status == "fail"
    assert any(f.startswith("gradient_rel") for f in row.failures)
    assert any(f.startswith("loss_curve_rel") for f in row.failures)
