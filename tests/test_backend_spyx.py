"""The Spyx backend (Spyx 1.0 on Flax NNX and JAX): parity, each custom piece against the
specification, and the Spyx behaviours that made each of them necessary. CPU only, tiny shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
spyx = pytest.importorskip("spyx")
pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import backends as registry  # noqa: E402
from backends.spyx import backend as B  # noqa: E402
from backends.spyx import neurons as N  # noqa: E402
from backends.spyx.networks import READOUTS  # noqa: E402
from tasks import reference  # noqa: E402
from tasks import reference_grad as RG  # noqa: E402
from tasks.specs import LOSS_KINDS, NEURON_KINDS, READOUT_KINDS, SCORE_KINDS, get_spec  # noqa: E402
from tests import jax_cases  # noqa: E402
from tests.jax_cases import rel as _rel  # noqa: E402

X = np.array([-1.2, -0.5, -0.25, 0.0, 0.2, 0.49, 0.5, 0.75, 1.5])
F64 = np.float64


@pytest.fixture(scope="module", autouse=True)
def x64():
    """Every float64 backend switches x64 on in its process; the neuron tests need it too."""
    jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def cls():
    return registry.load("spyx")


def _grad(axon, x=X):
    x = jnp.asarray(x, dtype=jnp.float64)
    return np.asarray(axon(x)), np.asarray(jax.grad(lambda v: jnp.sum(axon(v)))(x))


# ---------------------------------------------------------------- parity (fp64)
# dsrn_tdbn's full parity case takes a minute to compile on two cores (python -m tasks.parity
# --backend spyx --task dsrn_tdbn runs it); here: jax_cases.small_dsrn_spec's 3 blocks on 8 x 8
# images, the same code paths.
_dsrn_spec = jax_cases.small_dsrn_spec


def _dsrn_case(spec):
    return jax_cases.small_dsrn_case(spec, "test-spyx-dsrn")


@pytest.fixture(scope="module")
def dsrn(cls):
    spec = _dsrn_spec()
    weights, batches = _dsrn_case(spec)
    return spec, weights, batches, cls(spec, weights, precision="fp64")


def test_dsrn_forward_and_gradients_are_the_references(dsrn):
    spec, weights, batches, backend = dsrn
    blocks = spec.blocks()
    assert [b.has_projection for b in blocks] == [True, False, True]
    for batch_statistics in (True, False):
        ref = reference.forward(spec, weights, batches[0], batch_statistics=batch_statistics)
        out = backend.evaluate(batches[0], record=True, batch_statistics=batch_statistics)
        assert abs(out.loss - ref.loss) < 1e-12
        np.testing.assert_allclose(out.scores, ref.scores, rtol=0, atol=1e-15)
        for layer in spec.layer_names():
            assert out.spikes[layer].shape == ref.spikes[layer].shape  # channels-first
            np.testing.assert_array_equal(out.spikes[layer], ref.spikes[layer])
            assert _rel(out.membranes[layer], ref.membranes[layer]) < 1e-12
            np.testing.assert_array_equal(out.spike_counts[layer], ref.spikes[layer].sum(axis=(0, 1)))
    assert 0 < ref.spikes["layer2.0.lif2"].mean() < 1 or 0 < ref.spikes["stem.lif"].mean() < 1
    got = backend.gradients(batches[0])
    want = RG.gradients(spec, weights, batches[0])
    assert set(got) == set(want)
    assert max(_rel(got[k], want[k]) for k in want) < 1e-10
    assert np.abs(got["stem.conv.weight"]).max() > 0 and np.abs(got["layer1.0.bn1.weight"]).max() > 0


def test_dsrn_weights_are_stored_channels_last(dsrn):
    """Shared layouts in, JAX's inside: conv kernels [kh, kw, in, out], linear weights [in, out]
    (the round trip and tdBN's statistics: tests/test_backend_contract.py)."""
    spec, weights, batches, backend = dsrn
    new = {k: v * 1.01 for k, v in weights.items()}
    backend.set_weights(new)
    np.testing.assert_array_equal(np.asarray(backend.params["layer1.0.conv1.weight"]),
                                  new["layer1.0.conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(np.asarray(backend.params["fc1.weight"]), new["fc1.weight"].T)
    backend.set_weights(weights)


def test_surrogate_centred_on_zero_is_the_reference(cls):
    """--surrogate-center zero: the custom axon's window on U = 0 gives the reference's gradients,
    which differ from the threshold-centred ones (the setting is really used)."""
    spec = _dsrn_spec(surrogate_center="zero", T=1)
    weights, batches = _dsrn_case(spec)
    got = cls(spec, weights, precision="fp64").gradients(batches[0])
    want = RG.gradients(spec, weights, batches[0])
    assert max(_rel(got[k], want[k]) for k in want) < 1e-10
    centred = RG.gradients(spec.with_overrides(surrogate_center="threshold"), weights, batches[0])
    assert max(_rel(centred[k], got[k]) for k in got) > 1e-3


# ---------------------------------------------------------------- surrogates (spyx.axn)
def test_library_axons_used_are_the_specified_surrogates():
    # sigmoid at alpha 4 is spyx.axn.tanh(k=2) itself
    s, g = _grad(N.sigmoid(4.0))
    sig = 1 / (1 + np.exp(-4 * X))
    np.testing.assert_array_equal(s, (X > 0).astype(float))  # spyx's Heaviside is strict: H(0) = 0
    np.testing.assert_allclose(g, 4 * sig * (1 - sig), rtol=1e-13)
    np.testing.assert_allclose(g, RG.sigmoid_derivative(X, 4.0), rtol=1e-13)
    # the rectangle on the threshold is spyx.axn.boxcar(2a, 1/(2a)): an open window
    _, g = _grad(N.rectangle(0.5, 0.0))
    np.testing.assert_array_equal(g, RG.rectangular(X, 0.5, 0.0))
    assert g[X == 0.5][0] == 0.0 and g[X == 0.49][0] == 1.0
    # no overflow to NaN far from the threshold, in float32
    far = jnp.array([-60.0, -30.0, 30.0, 60.0], jnp.float32)
    assert np.isfinite(np.asarray(jax.grad(lambda v: jnp.sum(N.sigmoid(4.0)(v)))(far))).all()


def test_custom_axons_are_the_specified_surrogates_where_spyxs_are_not():
    # synthetic: 0.3 max(0, 1 - |x|); spyx.axn.triangular(1) has height 1
    s, g = _grad(N.triangle(0.3, 1.0, 1.0))
    np.testing.assert_array_equal(s, (X > 0).astype(float))
    np.testing.assert_allclose(g, RG.triangle(X, 0.3, 1.0), rtol=1e-14)
    _, lib = _grad(spyx.axn.triangular(1.0))
    np.testing.assert_allclose(lib * 0.3, g, rtol=1e-14)
    assert np.abs(lib - g).max() > 0.5
    # S = H((V - V_th)/V_th): dS/dV = h((V - V_th)/V_th) / V_th
    _, g2 = _grad(N.triangle(0.3, 1.0, 2.0))
    np.testing.assert_allclose(g2, RG.triangle(X / 2, 0.3, 1.0) / 2, rtol=1e-14)
    # fc_mnist: 1/(1 + (pi x)^2); spyx.axn.arctan(k) = 1/(pi (1 + (k pi x)^2)): k = 1 is 1/pi of it
    _, g = _grad(N.arctan(2.0))
    np.testing.assert_allclose(g, 1.0 / (1.0 + (math.pi * X) ** 2), rtol=1e-14)
    np.testing.assert_allclose(g, RG.arctangent(X, 2.0), rtol=1e-14)
    np.testing.assert_allclose(_grad(spyx.axn.arctan(1.0))[1] * math.pi, g, rtol=1e-14)
    assert abs(_grad(spyx.axn.arctan(2.0))[1][3] - g[3]) > 0.6  # the default k = 2 at x = 0: 1/pi vs 1
    # the rectangle on U = 0 (x = U - V_th, V_th = 0.4); the boxcar cannot be moved
    _, g = _grad(N.rectangle(0.5, -0.4))
    np.testing.assert_array_equal(g, RG.rectangular(X, 0.5, -0.4))
    assert not np.array_equal(g, _grad(spyx.axn.boxcar(1.0, 1.0))[1])
    # another sigmoid alpha than the spec's 4 is no longer spyx's tanh: the custom formula
    _, g = _grad(N.sigmoid(3.0))
    np.testing.assert_allclose(g, RG.sigmoid_derivative(X, 3.0), rtol=1e-13)
    # the detached reset: a Heaviside with no gradient at all
    s, g = _grad(N.DETACHED)
    np.testing.assert_array_equal(s, (X > 0).astype(float))
    assert not g.any()


# ---------------------------------------------------------------- neurons
def _neuron_vjp(module, inputs, grad_spikes, grad_membranes):
    x = jnp.asarray(inputs, jnp.float64)
    (s, v), vjp = jax.vjp(lambda z: N.run(module, z, jnp.float64), x)
    (gx,) = vjp((jnp.asarray(grad_spikes), jnp.asarray(grad_membranes)))
    return np.asarray(s), np.asarray(v), np.asarray(gx)


def _cotangents(shape, seed=0):
    gen = np.random.default_rng(seed)
    return gen.standard_normal(shape), gen.standard_normal(shape)


def test_soft_kind_is_cubalif_fed_one_minus_a_mem_and_read_at_the_updated_membrane():
    """CuBaLIF(alpha = a_syn, beta = a_mem) fed (1 - a_mem) x is the synthetic neuron, also where
    V passes 2 V_th (one subtraction per spike); forward and gradient are the reference's."""
    a_s, a_m = math.exp(-1 / 10), math.exp(-1 / 20)
    inputs = np.array([[60.0, 0.5], [0.0, 1.0], [0.0, 20.0], [30.0, 0.0], [0.0, 2.0], [0.0, 9.0], [1.0, 0.0]])
    inputs = inputs[:, None, :].repeat(2, axis=1) * np.array([1.0, 0.05])[None, :, None]
    neuron = N.NEURONS["soft"]((2,), (a_m, 1.0, 0.3, 1.0), F64, synapse=a_s)
    assert isinstance(neuron.neuron, spyx.nn.CuBaLIF)
    spike = RG.SpikeFunction(reference.heaviside, lambda x: RG.triangle(x, 0.3, 1.0))
    current = reference.exponential_synapse(inputs, a_s)
    want_s, want_v, cache = RG.soft_reset_lif(current, a_m, 1.0, spike)
    assert want_v.max() > 2.0 and 2 <= want_s.sum() < want_s.size
    gs, gm = _cotangents(inputs.shape)
    s, v, gx = _neuron_vjp(neuron, inputs, gs, gm)
    np.testing.assert_array_equal(s, want_s)
    np.testing.assert_allclose(v, want_v, rtol=1e-14, atol=1e-14)
    want_gx = RG.exponential_synapse_backward(RG.soft_reset_lif_backward(gs, cache, spike, gm), a_s)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-12, atol=1e-14)
    # why the wrapper: Spyx's own output at t is the spike of V[t-1], one step late
    cuba = neuron.neuron
    (late, _) = spyx.nn.run(cuba, jnp.asarray(inputs * (1 - a_m)), state=neuron.initial_state(2))
    late = np.asarray(late)
    np.testing.assert_array_equal(late[1:], want_s[:-1])
    assert not late[0].any() and not np.array_equal(late, want_s)


def test_subtractive_kind_is_spyx_lif_with_a_detached_reset():
    beta, v_th = 0.5, 1.0
    inputs = np.array([[1.0, 1.5], [0.6, 0.2], [1.0, 0.0], [0.0, 1.4], [0.3, 0.1]])[:, None, :]
    neuron = N.NEURONS["subtractive"]((2,), (beta, v_th, 2.0), F64)
    assert isinstance(neuron.neuron, spyx.nn.LIF) and neuron.neuron.spike is N.DETACHED
    spike = RG.SpikeFunction(reference.heaviside, lambda x: RG.arctangent(x, 2.0))
    want_s, want_u, cache = RG.subtractive_lif(inputs, beta, v_th, spike)
    gs, gm = _cotangents(inputs.shape, 1)
    s, u, gx = _neuron_vjp(neuron, inputs, gs, gm)
    # U hits V_th exactly at t = 0: no spike (H(0) = 0) and no reset at the next step
    assert want_u[0, 0, 0] == 1.0 and want_s[0, 0, 0] == 0.0 and want_s[1, 0, 0] == 1.0
    np.testing.assert_array_equal(s, want_s)
    np.testing.assert_array_equal(u, want_u)
    np.testing.assert_allclose(gx, RG.subtractive_lif_backward(gs, cache, spike, gm), rtol=1e-13, atol=1e-15)
    # with a surrogate in its reset (Spyx's way: the same axon for reset and output), the gradient differs
    lif = spyx.nn.LIF((2,), beta=np.float64(beta), threshold=v_th, activation=N.arctan(2.0), rngs=nnx.Rngs(0))
    attached = N.SpikeOfUpdate(lif, N.arctan(2.0), v_th, F64)
    _, u2, gx2 = _neuron_vjp(attached, inputs, gs, gm)
    np.testing.assert_array_equal(u2, want_u)
    assert np.abs(gx2 - gx).max() > 1e-2


def test_hard_kind_keeps_the_reset_gradient():
    tau, v_th = 2.0, 1.0
    inputs = np.array([[2.0, 4.0], [3.0, 0.5], [0.5, 5.0], [2.5, 1.0]])[:, None, :]
    neuron = N.NEURONS["hard"]((2,), (tau, v_th, 4.0), F64)
    spike = RG.SpikeFunction(reference.heaviside, lambda x: RG.sigmoid_derivative(x, 4.0))
    want_s, want_h, cache = RG.hard_reset_lif(inputs, tau, v_th, spike)
    assert want_h[0, 0, 0] == 1.0 and want_s[0, 0, 0] == 0.0  # H = V_th exactly: no spike
    gs, gm = _cotangents(inputs.shape, 2)
    s, h, gx = _neuron_vjp(neuron, inputs, gs, gm)
    np.testing.assert_array_equal(s, want_s)
    np.testing.assert_allclose(h, want_h, rtol=1e-15, atol=0)
    np.testing.assert_allclose(gx, RG.hard_reset_lif_backward(gs, cache, spike, gm), rtol=1e-12, atol=1e-15)


def test_stbp_kind_keeps_the_multiplicative_reset_gradient():
    inputs = np.array([[0.6], [0.5], [0.1]])[:, None, :]
    neuron = N.NEURONS["stbp"]((1,), (0.25, 0.4, 0.5, 0.0), F64)
    x = jnp.asarray(inputs)
    (g,) = jax.grad(lambda z: jnp.sum(N.run(neuron, z, jnp.float64)[1][1]), argnums=(0,))(x)
    # U2 = 0.25 U1 (1 - S1) + X2 with S1's surrogate 1 inside the window
    assert float(g[0, 0, 0]) == pytest.approx(-0.25 * 0.6 * 1.0)
    spike = RG.SpikeFunction(reference.heaviside, lambda v: RG.rectangular(v, 0.5, 0.0))
    want_s, want_u, cache = RG.stbp_lif(inputs, 0.25, 0.4, spike)
    gs, gm = _cotangents(inputs.shape, 3)
    s, u, gx = _neuron_vjp(neuron, inputs, gs, gm)
    np.testing.assert_array_equal(s, want_s)
    np.testing.assert_array_equal(u, want_u)
    np.testing.assert_allclose(gx, RG.stbp_lif_backward(gs, cache, spike, gm), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- losses (spyx.fn) and kind tables
def test_every_kind_has_one_entry():
    assert set(N.NEURONS) == set(NEURON_KINDS)
    assert set(READOUTS) == set(READOUT_KINDS)
    assert set(B.LOSSES) == set(LOSS_KINDS)
    assert set(B.SCORES) == set(SCORE_KINDS)


def test_mse_spikerate_fed_the_rate_is_the_specs_loss():
    """spyx.fn.mse_spikerate compares the rate mean_t R with one_hot * sparsity * T: at its default
    sparsity 0.25 that target is 0.25 T (12.25 at T = 49, for a rate <= 1), and sparsity = 1/T
    misses the one-hot by an ulp where (1/T) T rounds below 1.  Fed the rate as a one-step trace
    (sparsity 1) the target is the one-hot exactly."""
    spec = get_spec("fc_mnist_poisson", T=49)
    loss = B.LOSSES["mse_of_rate"](spec)
    labels = jnp.asarray([3, 0, 9])
    silent = jnp.zeros((49, 3, 10), jnp.float64)  # rate 0: the loss is the mean squared target
    ours = float(loss(silent, labels))
    naive = float(spyx.fn.mse_spikerate(sparsity=1 / 49, time_axis=0)(silent, labels))
    assert ours == pytest.approx(0.1, rel=1e-15)
    assert naive < ours  # (1/49) * 49 = 1 - 2^-53 in float64: the target misses the one-hot
    gen = np.random.default_rng(0)
    spikes = (gen.random((49, 6, 10)) < 0.3).astype(np.float64)
    labels = gen.integers(0, 10, size=6)
    got = float(loss(jnp.asarray(spikes), jnp.asarray(labels)))
    want, _ = reference.loss_and_scores(spec, spikes, spikes, labels)
    assert got == pytest.approx(want, rel=1e-14)
    default = float(spyx.fn.mse_spikerate(time_axis=0)(jnp.asarray(spikes), jnp.asarray(labels)))
    assert default > 10 * want


def test_integral_crossentropy_of_r_over_t_is_the_cross_entropy_of_the_mean():
    gen = np.random.default_rng(1)
    readout = gen.standard_normal((7, 5, 3))
    labels = gen.integers(0, 3, size=5)
    spec = get_spec("synthetic", T=7)
    got = float(B.LOSSES["ce_of_time_mean"](spec)(jnp.asarray(readout), jnp.asarray(labels)))
    assert got == pytest.approx(reference.cross_entropy(readout.mean(axis=0), labels), rel=1e-14)
    summed = float(spyx.fn.integral_crossentropy(smoothing=0.0, time_axis=0)(jnp.asarray(readout), labels))
    assert abs(summed - got) > 1e-2  # the library's own integral: the time sum, not the mean
    spec = get_spec("fc_mnist", T=7)
    got = float(B.LOSSES["ce_summed_over_time"](spec)(jnp.asarray(readout), jnp.asarray(labels)))
    want, _ = reference.loss_and_scores(spec, readout, readout, labels)
    assert got == pytest.approx(want, rel=1e-14)


# ---------------------------------------------------------------- weights, constants, optimiser
def _small(task: str, **extra):
    return jax_cases.small_case(task, "spyx", **extra)


def test_spyx_decays_are_constants_not_trained(cls):
    """Spyx keeps a given decay as an nnx.Param (nnx.Optimizer(model, wrt=nnx.Param) would train
    it); here the decays are constants: no gradient, no update, no shared weight."""
    spec, weights, batches = _small("synthetic")
    backend = cls(spec, weights, precision="fp64")
    decays = {path: float(v[...]) for path, v in backend.constants.items()}
    assert decays == pytest.approx({("hidden", "neuron", "alpha"): spec.a_syn, ("hidden", "neuron", "beta"): spec.a_mem,
                                    ("readout_synapse", "beta"): spec.a_syn}, rel=1e-15)
    assert all(isinstance(v, nnx.Param) for v in backend.constants.values())
    assert set(backend.gradients(batches[0])) == set(weights)
    for _ in range(2):
        backend.train_step(batches[0])
    assert {path: float(v[...]) for path, v in backend.constants.items()} == decays
    assert set(backend.params) == set(weights)


def test_forward_backward_takes_no_optax_step(cls):
    """forward_backward leaves optax's step count at zero (its gradients: tests/test_backend_contract.py)."""
    spec, weights, batches = _small("lif_layer")
    backend = cls(spec, weights, precision="fp64")
    backend.forward_backward(batches[0])
    backend.synchronize()
    assert backend.opt_state.inner_state[0].count == 0


def test_fp32_after_fp64_keeps_float32_parameters(cls):
    """An fp32 backend made after an fp64 one (which switches x64 on in the process) holds and
    trains float32 parameters; the versions name Spyx and what it runs on."""
    spec, weights, batches = _small("fc_mnist_poisson")
    cls(spec, weights, precision="fp64").gradients(batches[0])
    backend = cls(spec, weights, precision="fp32")
    assert {str(v.dtype) for v in backend.params.values()} == {"float32"}
    assert np.isfinite(backend.train_step(batches[0]))
    assert {str(v.dtype) for v in backend.params.values()} == {"float32"}
    assert {"spyx", "flax", "jax", "jaxlib", "optax"} <= set(cls.versions())
    assert cls.versions()["spyx"] == spyx.__version__


def test_precisions_run(cls):
    """fp32 and tf32 give the reference's loss; bf16 (Flax's bfloat16 Linear) is measurably
    further from it, with parameters and neuron state kept in float32, and trains."""
    spec, weights, batches = _small("fc_mnist")
    ref = reference.forward(spec, weights, batches[0])
    for precision in ("fp32", "tf32", "bf16"):
        backend = cls(spec, weights, precision=precision)
        out = backend.evaluate(batches[0], record=True)
        # the first step: W x + b before any reset (a spike flipped later moves a membrane by V_th)
        rel = _rel(out.membranes["lif1"][0], ref.membranes["lif1"][0])
        if precision == "bf16":
            assert 1e-5 < rel < 2e-2
        else:
            assert rel < 1e-5 and abs(out.loss - ref.loss) < 1e-5 * abs(ref.loss)
        if precision == "bf16":
            for _ in range(3):
                backend.train_step(batches[0])
            assert backend.evaluate(batches[0]).loss < out.loss
        assert {str(v.dtype) for v in backend.params.values()} == {"float32"}
        assert {str(v[...].dtype) for v in backend.constants.values()} == {"float32"}  # the LIFs' beta


def test_capabilities_name_spyxs_own_pieces(cls):
    caps = cls.capabilities()
    assert caps.components["tdbn"].startswith("custom")
    assert caps.components["surrogate:fc_mnist_poisson"].startswith("library: spyx.axn.tanh")
