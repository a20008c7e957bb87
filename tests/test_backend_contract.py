"""The checks every backend passes the same way, written once and run over the registry.
The contract and parity run for every registered backend (a new backend gets them by
registering); the others for the backends, tasks or precisions their tables list.

* the Backend contract on every task it runs (tests/backend_contract.py, a process per backend);
* fp64 parity with the reference on every task it runs (:data:`PARITY_ELSEWHERE` lists the
  pairs whose parity a backend's own test file checks another way, and why; :data:`PARITY_FAILS`
  those known to fail);
* a compiled variant (``:compile``) both on :func:`compiled_checked`'s tasks only, a task
  whose step does not compile skipped with the reason;
* no host read in a PyTorch network's forward and backward (:data:`HOST_READS_CHECKED`);
* a PyTorch backend's ``forward_backward`` leaves ``gradients()``'s gradients and takes no
  step (:data:`FORWARD_BACKWARD_CHECKED`);
* training lowers the loss at the lower precisions (:data:`LOSS_GOES_DOWN`);
* a short training run through the runner follows stbp's loss curve and accuracy on every
  trained task it runs, on one data set, by one set of tolerances (:data:`END_TO_END_SIZES`,
  :data:`END_TO_END_TOLERANCE`; :data:`END_TO_END_LOOSER` lists the pairs held to others, and why);
* neuron state starts from zero at every forward, whatever ran before (:data:`STATE_TASKS`);
* a JAX backend's compiled functions (:data:`JAX_BACKENDS`): each task's components named,
  Adam as torch's with a traced learning rate, forward_backward's gradients left on the device,
  staged and partial batches, and tdBN's weights and running statistics, on the small cases of
  tests/jax_cases.py;
* a train step moves tdBN's running statistics as the reference does (:data:`TDBN_RUNNING_CHECKED`).

Each parametrisation names its backend in ``registered_backend``: ``pytest
tests/test_backend_contract.py --backend snntorch`` runs one backend's (tests/conftest.py).
What is specific to a framework stays in its own tests/test_backend_<name>.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import backends
from tasks import reference
from tasks.data import Batch, make_data
from tasks.errors import BackendUnavailable
from tasks.parity import check_backend, parity_case
from tasks.profiles import get_profile, is_compiled_variant
from tasks.runner import RunConfig, run
from tasks.specs import TASKS, get_spec
from tests import jax_cases
from tests.backend_contract import assert_parity
from tests.conftest import ROOT, subprocess_env

# (backend, task) -> why its parity case is not run here (the backend's own test says how it is checked)
PARITY_ELSEWHERE = {
    ("norse", "dsrn_tdbn"): "the full 20-step case is python -m tasks.parity's; test_backend_norse.py "
                            "checks the forward, the NumPy BPTT gradients and two Adam steps",
    ("sinabs", "dsrn_tdbn"): "the NumPy BPTT is slow; test_backend_sinabs.py checks the forward against "
                             "the reference and the gradients against stbp's",
    ("spikingjelly", "lif_layer"): "the library's Sigmoid fires at the threshold: a documented difference, "
                                   "failing at parity's edge case (test_backend_spikingjelly.py shows where)",
    ("spikingjelly:torch", "lif_layer"): "as spikingjelly's (test_backend_spikingjelly.py)",
    ("spikingjelly:torch", "synthetic"): "the variant shares spikingjelly's networks; fc_mnist checks its neuron",
    ("spikingjelly:torch", "fc_mnist_poisson"): "the variant shares spikingjelly's networks; fc_mnist checks its neuron",
    ("spikingjelly:torch", "dsrn_tdbn"): "the variant shares spikingjelly's networks; fc_mnist checks its neuron",
    ("spyx", "fc_mnist"): "the NumPy reference's loss curve takes most of a minute; test_backend_spyx.py checks "
                          "the neuron against the reference's backward pass and training against stbp's",
    ("spyx", "dsrn_tdbn"): "compiling the full case takes a minute on two cores; test_backend_spyx.py runs "
                           "the same code paths on three blocks of 8 x 8 images",
}

# A compiled variant compiles each graph with inductor, tens of seconds a graph: its contract
# and parity run here on the tasks the smoke profile checks its parity on (the smallest);
# the cpu and gpu profiles' parity (python -m tasks.parity) check every task.
COMPILED_CHECKED = get_profile("smoke").parity_compiled_tasks


def compiled_checked(name: str) -> tuple[str, ...]:
    """The tasks a compiled variant is checked on here: :data:`COMPILED_CHECKED`'s it runs (none
    for rockpool, which runs synthetic alone: T = 100 unrolled, minutes of compiling; the cpu
    profile's parity checks it)."""
    runs = backends.load(name).capabilities().tasks
    return tuple(t for t in COMPILED_CHECKED if t in runs)



def _compiled_only_on_its_checked_tasks(name: str, task: str) -> None:
    if is_compiled_variant(name) and task not in compiled_checked(name):
        pytest.skip(f"a compiled variant is checked here on {', '.join(COMPILED_CHECKED)} (those it runs); "
                    f"the cpu profile's parity checks {task}")

# (backend, task) -> why its parity is known to fail (docs/performance.md, "Compiled variants"):
# a strict xfail, so that the entry goes once it passes
PARITY_FAILS = {
    ("spikingjelly:compile", "lif_layer"): "the library's LIFNode fires at the threshold (2 of 11 520 spikes at "
                                           "parity's edge case), as spikingjelly's documented difference says",
}

# backend -> the tasks whose PyTorch network is checked for host reads
HOST_READS_CHECKED = {
    "snntorch": ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer"),
    "norse": ("synthetic", "fc_mnist", "fc_mnist_poisson"),
    "sinabs": ("synthetic", "fc_mnist", "lif_layer"),
}

# backend -> the tasks whose forward_backward is checked against gradients()
FORWARD_BACKWARD_CHECKED = {
    "snntorch": ("lif_layer", "fc_mnist_poisson"),
    "sinabs": ("lif_layer",),
    "spikingjelly": ("lif_layer", "dsrn_tdbn"),
    "spikingjelly:torch": ("lif_layer", "dsrn_tdbn"),
}

# backend -> the precisions at which a few train steps on one batch lower its loss
LOSS_GOES_DOWN = {
    "stbp": ("fp32", "tf32", "bf16"),
    "snntorch": ("fp32", "tf32", "bf16"),
    "sinabs": ("fp32", "tf32", "bf16"),
    "norse": ("fp32", "bf16"),
}

# the backends whose tdBN running statistics after a train step are checked on the parity case
# (the JAX backends', on a smaller network: test_a_jax_backend_keeps_tdbns_weights_and_statistics)
TDBN_RUNNING_CHECKED = ("stbp", "snntorch", "spikingjelly")

# the end-to-end run of each trained task: a few steps at small sizes (the image tasks on
# conftest's tiny "mnist", of which the first 64 training and 32 test images)
TRAINED = tuple(task for task in TASKS if get_spec(task).trainable)
_IMAGES = {"dataset": "mnist", "epochs": 1, "batch_size": 16, "limit_train": 64, "limit_test": 32}
END_TO_END_SIZES = {
    "synthetic": {"T": 30, "batch_size": 16, "steps": 6, "eval_every_steps": 3},
    "fc_mnist": {**_IMAGES, "T": 4},
    "fc_mnist_poisson": {**_IMAGES, "T": 8},
    "dsrn_tdbn": {**_IMAGES, "T": 2, "width": 1 / 16, "validation_size": 16, "batch_size": 8},
}

# how close a backend's run stays to stbp's: every training loss within rtol (relative) or
# atol (absolute), the first ``exact_steps`` losses within 1e-5 relative, the test accuracy
# within ``accuracy`` (None: not compared)
END_TO_END_TOLERANCE = {"rtol": 1e-3, "atol": 0.0, "exact_steps": 0, "accuracy": 0.05}

# a DSRN whose float32 arithmetic is written differently from stbp's: Adam's first steps turn any
# sign difference of a near-zero gradient into a full learning-rate step, and at T = 2 the loss of
# binary output rates then jumps (by 0.06 at the fifth step in spyx's run): same start, same
# neighbourhood
_DSRN_ROUNDING = {"rtol": 0.0, "atol": 0.1, "exact_steps": 2, "accuracy": None}

# (backend, task) -> (its tolerance, why): the pairs held to another than END_TO_END_TOLERANCE
END_TO_END_LOOSER = {
    ("snntorch", "dsrn_tdbn"): (_DSRN_ROUNDING, "float32 rounding differs: fused batch norm, reset written differently"),
    ("spyx", "dsrn_tdbn"): (_DSRN_ROUNDING, "float32 rounding differs: XLA's convolutions and tdBN, channels-last"),
    # seen on a CPU without AVX-512 (ATen's AVX2 kernels), the fifth loss 0.016 apart; equal where it has AVX-512
    ("spikingjelly", "dsrn_tdbn"): (_DSRN_ROUNDING, "float32 rounding differs from stbp's on some CPUs: "
                                                     "ThresholdDependentBatchNorm2d over T x B, the stem run once"),
    ("spikingjelly:torch", "dsrn_tdbn"): (_DSRN_ROUNDING, "as spikingjelly's (the same network, torch's kernels)"),
}

# the tasks on which neuron state is checked to start from zero at every forward
STATE_TASKS = ("synthetic", "fc_mnist")

# the backends built on JAX (their registry entry requires jax), whose compiled functions are
# checked the same way
JAX_BACKENDS = tuple(name for name in backends.names() if "jax" in backends.REGISTRY[name].requires)


def _available(name: str) -> None:
    ok, why = backends.availability(name)
    if not ok:
        pytest.skip(why)
    if "cpu" not in backends.entry(name).devices:  # the CUDA-graph variants: the gpu edition's parity checks them
        pytest.skip(f"{name} runs on {', '.join(backends.entry(name).devices)} only; these checks run on the CPU")


@pytest.mark.parametrize("registered_backend", backends.names())
def test_the_backend_keeps_the_contract(registered_backend):
    _available(registered_backend)
    tasks = [",".join(compiled_checked(registered_backend))] if is_compiled_variant(registered_backend) else []
    if tasks == [""]:
        pytest.skip(f"{registered_backend} runs none of {', '.join(COMPILED_CHECKED)}, where compiled variants are "
                    "checked here; the cpu profile's parity checks it")
    proc = subprocess.run([sys.executable, "-m", "tests.backend_contract", registered_backend, *tasks],
                          capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    broken, unavailable = found["broken"], found["unavailable"]
    assert not {task: b for task, b in broken.items() if b}, broken
    if not broken:  # every task unavailable (a step that does not compile): says why, breaks nothing
        assert unavailable, f"{registered_backend} runs no task"
        pytest.skip(f"{registered_backend} is unavailable on every task: {unavailable}")


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("registered_backend", backends.names())
def test_parity_with_the_reference_in_float64(registered_backend, task, request):
    """The fp64 parity case passes by parity's one set of limits, with no documented difference;
    a compiled variant's step that does not compile is unavailable, with its reason."""
    if (registered_backend, task) in PARITY_ELSEWHERE:
        pytest.skip(PARITY_ELSEWHERE[registered_backend, task])
    _available(registered_backend)
    _compiled_only_on_its_checked_tasks(registered_backend, task)
    if task not in backends.load(registered_backend).capabilities().tasks:
        pytest.skip(f"{registered_backend} does not run {task}")
    if (registered_backend, task) in PARITY_FAILS:
        request.applymarker(pytest.mark.xfail(reason=PARITY_FAILS[registered_backend, task], strict=True))
    row = check_backend(task, registered_backend)
    if row.status == "unavailable" and is_compiled_variant(registered_backend):
        pytest.skip(row.message)
    assert row.precision == "fp64"
    assert_parity(row)
    assert not row.documented_difference


@pytest.mark.parametrize("registered_backend,task",
                         [(name, task) for name, tasks in HOST_READS_CHECKED.items() for task in tasks])
def test_the_network_never_reads_a_tensor_on_the_host(registered_backend, task):
    """Forward and backward of the network read no tensor value on the host (on CUDA each
    read would be a device synchronisation; the loss and Adam's step counts are shared code)."""
    _available(registered_backend)
    from tests.torch_backend_checks import network_host_reads  # imports torch

    case = parity_case(task)
    backend = backends.load(registered_backend)(case.spec, case.weights)
    assert network_host_reads(backend, case.batches[0]) == {}


@pytest.mark.parametrize("registered_backend,task",
                         [(name, task) for name, tasks in FORWARD_BACKWARD_CHECKED.items() for task in tasks])
def test_forward_backward_leaves_the_gradients_and_the_weights(registered_backend, task):
    """forward_backward: the gradients of gradients() left on the parameters (in the shared
    layout: a tdBN's converted where the framework keeps another), twice in a row without
    accumulating; no optimiser step taken and no weight changed."""
    _available(registered_backend)
    case = parity_case(task)
    backend = backends.load(registered_backend)(case.spec, case.weights, device="cpu", precision="fp64")
    staged = backend.stage(case.batches[0])
    params = dict(backend.model.named_parameters())
    for _ in range(2):
        loss = backend.forward_backward(staged)
        backend.synchronize()
    assert loss.requires_grad and not backend.optimizer.state
    left = {n: backend.gradient_from_module(n, params[n].grad.numpy().copy()) for n in backend.parameter_names}
    got = backend.get_weights()
    for name in backend.parameter_names:
        np.testing.assert_array_equal(got[name], case.weights[name])
    want = backend.gradients(case.batches[0])
    assert set(left) == set(want) and max(np.abs(v).max() for v in want.values()) > 0
    for name in want:
        np.testing.assert_allclose(left[name], want[name], rtol=1e-13, atol=0, err_msg=name)


@pytest.mark.parametrize("registered_backend,precision",
                         [(name, precision) for name, precisions in LOSS_GOES_DOWN.items() for precision in precisions])
def test_training_lowers_the_loss(registered_backend, precision):
    """Eight train steps on fc_mnist's parity batch lower its loss."""
    _available(registered_backend)
    case = parity_case("fc_mnist")
    backend = backends.load(registered_backend)(case.spec, case.weights, precision=precision)
    batch = case.batches[0]
    first = backend.evaluate(batch).loss
    for _ in range(8):
        backend.train_step(batch)
    assert backend.evaluate(batch).loss < first


@pytest.mark.parametrize("registered_backend", TDBN_RUNNING_CHECKED)
def test_a_train_step_moves_tdbn_running_statistics_as_the_reference(registered_backend):
    _available(registered_backend)
    case = parity_case("dsrn_tdbn")
    backend = backends.load(registered_backend)(case.spec, case.weights, device="cpu", precision="fp64")
    want = reference.forward(case.spec, case.weights, case.batches[0], batch_statistics=True).running
    assert want
    backend.train_step(case.batches[0])
    got = backend.get_weights()
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.fixture(scope="module")
def stbp_runs():
    """stbp's end-to-end result of each task, run once for every backend compared with it."""
    return {}


def _end_to_end(name: str, task: str, data_root, stbp_runs):
    spec = get_spec(task, **END_TO_END_SIZES[task])
    data = make_data(spec, data_dir=data_root, allow_download=False)  # synthetic: generated, no data set
    if task not in stbp_runs:
        stbp_runs[task] = run(spec, RunConfig(backend="stbp", progress=False), data=data)
    return spec, run(spec, RunConfig(backend=name, progress=False), data=data), stbp_runs[task]


@pytest.mark.parametrize("task", TRAINED)
@pytest.mark.parametrize("registered_backend", [name for name in backends.names() if name != "stbp"])
def test_a_short_training_run_follows_stbps(registered_backend, task, data_root, stbp_runs):
    """The runner end to end: the backend's training losses and test accuracy are stbp's, from
    the same weights and the same batches, within :data:`END_TO_END_TOLERANCE` (or the pair's
    entry in :data:`END_TO_END_LOOSER`); the result records the backend's versions, every layer
    and the CPU."""
    _available(registered_backend)
    if task not in backends.load(registered_backend).capabilities().tasks:
        pytest.skip(f"{registered_backend} does not run {task}")
    _compiled_only_on_its_checked_tasks(registered_backend, task)
    spec, got, want = _end_to_end(registered_backend, task, data_root, stbp_runs)
    assert want.status == "ok", want.message
    if got.status == "unavailable" and is_compiled_variant(registered_backend):
        pytest.skip(got.message)  # a step that does not compile
    assert got.status == "ok", got.message + got.extra.get("traceback", "")
    framework_versions = backends.load(registered_backend).versions()
    assert framework_versions and got.versions.items() >= framework_versions.items()
    assert got.device["type"] == "cpu"
    assert [layer.name for layer in got.layers] == spec.layer_names()
    tolerance = END_TO_END_LOOSER.get((registered_backend, task), (END_TO_END_TOLERANCE, ""))[0]
    curve, ref = np.array(got.curves["train_loss"].y), np.array(want.curves["train_loss"].y)
    assert len(curve) == len(ref) == got.metrics["steps"].value > 0 and np.all(np.isfinite(curve))
    assert {name: len(c.y) for name, c in got.curves.items()} == {name: len(c.y) for name, c in want.curves.items()}
    np.testing.assert_allclose(curve[:tolerance["exact_steps"]], ref[:tolerance["exact_steps"]], rtol=1e-5)
    np.testing.assert_allclose(curve, ref, rtol=tolerance["rtol"], atol=tolerance["atol"])
    assert 0.0 <= got.metric("accuracy") <= 1.0 and got.metric("synops_ac") is not None
    if tolerance["accuracy"] is not None:
        assert got.metric("accuracy") == pytest.approx(want.metric("accuracy"), abs=tolerance["accuracy"])


def _first_samples(batch: Batch, n: int) -> Batch:
    """The first ``n`` samples of ``batch`` (a static batch is [B, ...], a dynamic one [T, B, ...])."""
    return Batch(batch.x[:n] if batch.static else batch.x[:, :n], batch.y[:n], batch.static)


@pytest.mark.parametrize("task", STATE_TASKS)
@pytest.mark.parametrize("registered_backend", backends.names())
def test_neuron_state_starts_from_zero_at_every_forward(registered_backend, task):
    """A forward after other batches (a smaller one among them) and a train step, with the
    weights set back, gives the first forward's spikes, membranes and readout exactly: no
    neuron keeps the state of an earlier call (a library that keeps it, or re-zeroes it only
    on a change of batch size, would fail here)."""
    _available(registered_backend)
    cls = backends.load(registered_backend)
    if task not in cls.capabilities().tasks:
        pytest.skip(f"{registered_backend} does not run {task}")
    _compiled_only_on_its_checked_tasks(registered_backend, task)
    case = parity_case(task)
    precision = "fp64" if "fp64" in cls.capabilities().precisions else "fp32"
    backend = cls(case.spec, case.weights, device="cpu", precision=precision)
    try:
        first = backend.evaluate(case.batches[0], record=True)
    except BackendUnavailable as exc:  # a compiled variant's step that does not compile
        pytest.skip(str(exc))
    backend.evaluate(case.batches[1])
    backend.evaluate(_first_samples(case.batches[1], 5))
    backend.train_step(case.batches[1])
    backend.set_weights(case.weights)
    again = backend.evaluate(case.batches[0], record=True)
    assert first.spikes and set(again.spikes) == set(first.spikes)
    for layer in first.spikes:
        np.testing.assert_array_equal(again.spikes[layer], first.spikes[layer], err_msg=layer)
        np.testing.assert_array_equal(again.membranes[layer], first.membranes[layer], err_msg=layer)
    np.testing.assert_array_equal(again.scores, first.scores)
    if first.readout is not None:
        np.testing.assert_array_equal(again.readout, first.readout)


def _jax_backend(name: str):
    _available(name)
    return backends.load(name)


def _stbp():
    _available("stbp")
    return backends.load("stbp")


@pytest.mark.parametrize("registered_backend", JAX_BACKENDS)
def test_a_jax_backend_says_how_it_builds_each_task(registered_backend):
    """Every task and precision, no documented difference, and each task's neuron and surrogate
    and tdBN said to be the library's or custom."""
    caps = _jax_backend(registered_backend).capabilities()
    assert set(caps.tasks) == set(TASKS)
    assert {"fp32", "tf32", "bf16", "fp64"} <= set(caps.precisions)
    assert not caps.differences and not caps.parity_tolerances
    for task in caps.tasks:
        for part in ("neuron", "surrogate"):
            assert caps.components[f"{part}:{task}"].split(":")[0] in ("library", "custom"), (part, task)
    assert caps.components["tdbn"].split(":")[0] in ("library", "custom")


@pytest.mark.parametrize("registered_backend", JAX_BACKENDS)
def test_a_jax_backends_adam_is_torchs_with_a_traced_learning_rate(registered_backend):
    """Three Adam steps give torch.optim.Adam's weights (stbp, fp64); changing the learning
    rate takes effect without recompiling; lr 0 leaves the weights where they are."""
    cls, stbp_cls = _jax_backend(registered_backend), _stbp()
    spec, weights, batches = jax_cases.small_case("fc_mnist", registered_backend)
    backend, stbp = cls(spec, weights, precision="fp64"), stbp_cls(spec, weights, precision="fp64")
    for i, batch in enumerate(batches):
        lr = spec.lr * (0.5 ** i)
        backend.set_learning_rate(lr)
        stbp.set_learning_rate(lr)
        assert abs(backend.train_step(batch) - stbp.train_step(batch)) < 1e-9
    got, want = backend.get_weights(), stbp.get_weights()
    assert max(jax_cases.rel(got[k] - weights[k], want[k] - weights[k]) for k in want) < 1e-8
    compiled = backend.compile_count
    backend.set_learning_rate(0.0)
    backend.train_step(batches[0])
    assert backend.compile_count == compiled
    for k, v in backend.get_weights().items():
        np.testing.assert_array_equal(v, got[k])


@pytest.mark.parametrize("registered_backend", JAX_BACKENDS)
def test_a_jax_backends_forward_backward_leaves_the_gradients_on_the_device(registered_backend):
    """lif_layer's forward_backward: (gradients, loss) left on the device, those of gradients()
    and the reference's loss; compiled once for staged and unstaged batches; weights untouched
    and no Adam step taken (the next train step is stbp's first)."""
    import jax

    cls, stbp_cls = _jax_backend(registered_backend), _stbp()
    spec, weights, batches = jax_cases.small_case("lif_layer", registered_backend)
    backend = cls(spec, weights, precision="fp64")
    staged = backend.stage(batches[0])
    assert backend.forward_backward(staged) is None
    backend.synchronize()
    compiled = backend.compile_count
    backend.forward_backward(staged)
    backend.forward_backward(batches[0])  # an unstaged batch of the same shape: the same function
    backend.synchronize()
    assert backend.compile_count == compiled
    grads, loss = backend._last
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves((grads, loss)))
    got = backend.shared_gradients(grads)
    for name, value in backend.get_weights().items():
        np.testing.assert_array_equal(value, weights[name])
    want = backend.gradients(batches[0])
    assert set(got) == set(want) == {"fc.weight"} and np.abs(want["fc.weight"]).max() > 0
    np.testing.assert_allclose(got["fc.weight"], want["fc.weight"], rtol=1e-13, atol=0)
    ref = reference.forward(spec, weights, batches[0])
    assert 0 < ref.spikes["lif"].mean() < 1 and float(loss) == pytest.approx(ref.loss, rel=1e-12)
    stbp = stbp_cls(spec, weights, precision="fp64")
    backend.train_step(batches[0])
    stbp.train_step(batches[0])
    assert jax_cases.rel(backend.get_weights()["fc.weight"], stbp.get_weights()["fc.weight"]) < 1e-12


@pytest.mark.parametrize("registered_backend", JAX_BACKENDS)
def test_a_jax_backend_stages_and_evaluates_a_partial_batch_in_float32_after_float64(registered_backend):
    """An fp32 backend made after an fp64 one (which switches x64 on in the process): a staged
    batch trains and infers; a smaller last batch evaluates (its own compiled shape); on the CPU
    there is no device-memory peak; out-of-memory errors are recognised."""
    cls = _jax_backend(registered_backend)
    spec, weights, batches = jax_cases.small_case("fc_mnist_poisson", registered_backend)
    cls(spec, weights, precision="fp64").gradients(batches[0])
    backend = cls(spec, weights, precision="fp32")
    staged = backend.stage(batches[0])
    assert np.isfinite(backend.train_step(staged))
    backend.infer(staged)
    backend.synchronize()
    out = backend.evaluate(_first_samples(batches[1], 4), record=True)
    assert out.scores.shape == (4, spec.n_classes) and out.spike_counts["lif1"].shape == (spec.n_hidden,)
    assert out.membranes["lif1"].shape == (spec.T, 4, spec.n_hidden)
    assert backend.peak_memory_bytes() is None and backend.device_info()["type"] == "cpu"
    assert backend.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not backend.is_out_of_memory(ValueError("shapes do not match"))


@pytest.mark.parametrize("registered_backend", JAX_BACKENDS)
def test_a_jax_backend_keeps_tdbns_weights_and_statistics(registered_backend):
    """On a small DSRN: weights near the shared ones load and come back unchanged, in the shared
    names and layouts, as float64, and the forward with them is the reference's in both tdBN
    modes; evaluate(batch_statistics=True) and gradients leave every weight and running
    statistic alone; train_step moves the running statistics exactly as the reference says
    (unbiased variance, momentum 0.1); a missing trainable weight and a weight of the wrong
    shape are refused."""
    cls = _jax_backend(registered_backend)
    spec = jax_cases.small_dsrn_spec()
    weights, batches = jax_cases.small_dsrn_case(spec, f"test-contract-{registered_backend}-dsrn")
    backend = cls(spec, weights, precision="fp64")
    gen = np.random.default_rng(3)
    new = {k: v + 0.01 * gen.standard_normal(v.shape) for k, v in weights.items()}
    new = {k: (np.abs(v) + 0.5 if k.endswith("running_var") else v) for k, v in new.items()}
    backend.set_weights(new)
    before = backend.get_weights()
    assert set(before) == set(new)
    for k in new:
        assert before[k].shape == new[k].shape and before[k].dtype == np.float64
        np.testing.assert_array_equal(before[k], new[k])
    for batch_statistics in (True, False):
        ref = reference.forward(spec, new, batches[0], batch_statistics=batch_statistics)
        out = backend.evaluate(batches[0], record=True, batch_statistics=batch_statistics)
        assert abs(out.loss - ref.loss) < 1e-10
        for layer in spec.layer_names():
            np.testing.assert_array_equal(out.spikes[layer], ref.spikes[layer], err_msg=layer)
    backend.gradients(batches[0])
    for k, v in backend.get_weights().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    expected = reference.forward(spec, before, batches[0], batch_statistics=True).running
    backend.train_step(batches[0])
    trained = backend.get_weights()
    assert expected
    for k, v in expected.items():
        assert jax_cases.rel(trained[k], v) < 1e-12, k
        assert not np.array_equal(trained[k], before[k]), k
    with pytest.raises(ValueError):
        backend.set_weights({k: v for k, v in new.items() if k != "fc1.weight"})
    with pytest.raises(ValueError):
        backend.set_weights({**new, "stem.conv.weight": new["stem.conv.weight"][:, :, :2]})


def test_every_listed_pair_names_a_registered_backend_and_a_task():
    """A stale entry (a renamed backend or task) would silently stop nothing: refuse it."""
    for name, task in (*PARITY_ELSEWHERE, *PARITY_FAILS, *END_TO_END_LOOSER):
        assert name in backends.REGISTRY and task in TASKS, (name, task)
    for name, tasks in (*HOST_READS_CHECKED.items(), *FORWARD_BACKWARD_CHECKED.items()):
        assert name in backends.REGISTRY and set(tasks) <= set(TASKS), name
    for name in (*LOSS_GOES_DOWN, *TDBN_RUNNING_CHECKED):
        assert name in backends.REGISTRY, name
