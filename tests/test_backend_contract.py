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
from tasks.parity import check_backend, parity_case
from tasks.profiles import get_profile, is_compiled_variant
from tasks.specs import TASKS
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
    """The tasks a compiled variant is checked on here: :data:`COMPILED_CHECKED`'s it runs, or
    else the first it runs (rockpool runs synthetic alone)."""
    runs = backends.load(name).capabilities().tasks
    return tuple(t for t in COMPILED_CHECKED if t in runs) or tuple(runs[:1])


# (backend, task) -> why its parity is known to fail (docs/performance.md, "Compiled variants"):
# a strict xfail, so that the entry goes once it passes
PARITY_FAILS = {
    ("spikingjelly:compile", "lif_layer"): "2 of 11 520 spikes differ from the reference (membrane 0.18 off after "
                                           "the flipped reset, gradients 1.6e-3): not looked into yet",
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

# the backends whose tdBN running statistics after a train step are checked here (the JAX
# backends check theirs, with more, in tests/jax_backend_checks.py)
TDBN_RUNNING_CHECKED = ("stbp", "snntorch", "spikingjelly")


def _available(name: str) -> None:
    ok, why = backends.availability(name)
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize("registered_backend", backends.names())
def test_the_backend_keeps_the_contract(registered_backend):
    _available(registered_backend)
    tasks = [",".join(compiled_checked(registered_backend))] if is_compiled_variant(registered_backend) else []
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
    if is_compiled_variant(registered_backend) and task not in compiled_checked(registered_backend):
        pytest.skip(f"a compiled variant is checked here on {', '.join(compiled_checked(registered_backend))}; "
                    f"the cpu profile's parity checks {task}")
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


def test_every_listed_pair_names_a_registered_backend_and_a_task():
    """A stale entry (a renamed backend or task) would silently stop nothing: refuse it."""
    for name, task in (*PARITY_ELSEWHERE, *PARITY_FAILS):
        assert name in backends.REGISTRY and task in TASKS, (name, task)
    for name, tasks in (*HOST_READS_CHECKED.items(), *FORWARD_BACKWARD_CHECKED.items()):
        assert name in backends.REGISTRY and set(tasks) <= set(TASKS), name
    for name in (*LOSS_GOES_DOWN, *TDBN_RUNNING_CHECKED):
        assert name in backends.REGISTRY, name
