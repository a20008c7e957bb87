"""The torch.compile variants' mechanism (backends/torch_common.py): graph breaks
counted and recorded, a step that does not compile unavailable with its reason,
never an eager fallback.  Tiny networks, compiled with dynamo's ``aot_eager``
backend (the same tracing, AOTAutograd and counters as inductor, without its
C++ build); the registered variants compile with inductor in their parity and
contract checks."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import backends  # noqa: E402
from backends import torch_common  # noqa: E402
from backends.stbp.backend import STBPBackend  # noqa: E402
from tasks.errors import BackendUnavailable  # noqa: E402
from tasks.parity import parity_case  # noqa: E402
from tasks.result import Result  # noqa: E402
from tasks.runner import record_compilation  # noqa: E402


@pytest.fixture
def aot_eager(monkeypatch):
    monkeypatch.setattr(torch_common, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Wrapped(torch.nn.Module):
    """STBP's network inside a module that does something more in its forward."""

    def __init__(self, inner, before):
        super().__init__()
        self.inner = inner
        self.before = before

    def forward(self, x, static, record):
        return self.inner(self.before(self, x), static=static, record=record)


def wrapping(before):
    class Backend(STBPBackend):
        def build_model(self):
            return Wrapped(super().build_model(), before)

        def module_key(self, name):
            return "inner." + name

    return Backend


def breaks_the_graph(module, x):
    torch._dynamo.graph_break()
    return x


def test_a_graph_break_is_counted_and_recorded_and_the_results_are_the_eager_ones(aot_eager):
    case = parity_case("fc_mnist")
    eager = wrapping(breaks_the_graph)
    compiled = torch_common.compiled_variant(eager)
    want = eager(case.spec, case.weights, precision="fp64").gradients(case.batches[0])
    backend = compiled(case.spec, case.weights, precision="fp64")
    assert backend.compile_info()["graph_breaks"] is None  # nothing compiled yet
    got = backend.gradients(case.batches[0])
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-15)
    info = backend.compile_info()
    breaks = info["graph_breaks"]
    # dynamo counts the break once in each frame it cuts (the function, the module's forward, ...)
    assert breaks >= 1 and info["graphs"] >= 2
    assert any("graph_break()" in reason for reason in info["network"]["graph_break_reasons"])
    backend.train_step(case.batches[0])  # Adam compiles apart: its breaks are not the network's
    assert backend.compile_info()["graph_breaks"] == breaks
    assert backend.compile_info()["network"]["graph_breaks_by_call"] == {"training, gradients": breaks}

    result = Result(task="fc_mnist", backend="stbp:compile")
    result.capabilities = compiled.capabilities().to_dict()
    record_compilation(result, backend)
    assert result.extra["compile"]["graph_breaks"] == breaks
    assert result.capabilities["compile"]["graph_breaks_counted"] == breaks
    assert result.capabilities["compile"]["mode"] == "default"


def test_the_same_network_without_the_break_compiles_whole(aot_eager):
    case = parity_case("fc_mnist")
    backend = torch_common.compiled_variant(wrapping(lambda module, x: x))(case.spec, case.weights, precision="fp64")
    backend.gradients(case.batches[0])
    info = backend.compile_info()
    assert info["graph_breaks"] == 0 and info["graphs"] == 1 and info["network"]["graph_break_reasons"] == {}
    assert info["network"]["graph_breaks_by_call"] == {"training, gradients": 0}


def test_an_eager_backend_records_no_compilation():
    case = parity_case("fc_mnist")
    backend = STBPBackend(case.spec, case.weights, precision="fp64")
    assert backend.compile_info() is None
    assert "compile" not in STBPBackend.capabilities().to_dict()
    result = Result(task="fc_mnist", backend="stbp")
    record_compilation(result, backend)
    assert "compile" not in result.extra


def test_a_step_that_fails_to_compile_is_unavailable_with_the_reason(aot_eager, monkeypatch):
    def refuses(gm, example_inputs):
        raise RuntimeError("no code for this graph")

    monkeypatch.setattr(torch_common, "COMPILE_BACKEND", refuses)
    case = parity_case("fc_mnist")
    backend = torch_common.compiled_variant(STBPBackend)(case.spec, case.weights, precision="fp64")
    with pytest.raises(BackendUnavailable, match="torch.compile of the network and loss failed.*no code for this graph"):
        backend.train_step(case.batches[0])


def test_a_step_that_recompiles_past_the_limit_is_unavailable_not_eager(aot_eager):
    calls = []

    def changes_every_call(module, x):  # a new Python string each call: a guard that always fails
        calls.append(1)
        return x * 1.0 if f"call {len(calls)}".endswith("1") else x

    case = parity_case("fc_mnist")
    backend = torch_common.compiled_variant(wrapping(changes_every_call))(case.spec, case.weights, precision="fp64")
    # (torch's config objects are patched through their own patch(): monkeypatch's undo deletes the key)
    with torch._dynamo.config.patch(recompile_limit=1):
        backend.forward_backward(case.batches[0])
        with pytest.raises(BackendUnavailable, match="torch.compile of the network and loss failed"):
            for batch in case.batches[1:4]:
                backend.forward_backward(batch)


def test_a_missing_cpp_compiler_makes_the_variant_unavailable():
    from torch._inductor import config

    case = parity_case("fc_mnist")
    with config.patch({"cpp.cxx": ("no-such-cxx-compiler",)}):
        why = torch_common.compiler_missing("cpu")
        assert why is not None and "C++ compiler" in why
        with pytest.raises(NotImplementedError, match="needs a C\\+\\+ compiler"):
            torch_common.compiled_variant(STBPBackend)(case.spec, case.weights, precision="fp64")
    # inductor's default search is g++
    assert (torch_common.compiler_missing("cpu") is None) == (shutil.which("g++") is not None)


def test_every_pytorch_framework_has_a_compiled_variant_in_its_hue():
    compiled = [n for n in backends.names() if n.endswith(":compile")]
    assert sorted(compiled) == sorted(["stbp:compile", "snntorch:compile", "spikingjelly:compile", "norse:compile",
                                       "sinabs:compile", "rockpool:compile"])
    # CUDA graphs where the training step compiles (rockpool's passes the recompilation limit)
    graphs = [n for n in backends.names() if n.endswith(":cudagraphs")]
    assert sorted(graphs) == sorted(n.replace(":compile", ":cudagraphs") for n in compiled if n != "rockpool:compile")
    for name in graphs:
        assert backends.entry(name).compiles == backends.entry(name.replace(":cudagraphs", ":compile")).compiles
        assert backends.entry(name).devices == ("cuda",) and name not in backends.installable_names("cpu")
    colours = [backends.entry(n).color for n in backends.names() if backends.entry(n).color]
    assert len(colours) == len(set(colours))
    assert backends.entry("spikingjelly:compile").env == backends.entry("spikingjelly:torch").env
    for name in compiled:
        if backends.availability(name)[0]:
            caps = backends.load(name).capabilities()
            assert caps.compile["mode"] == "default" and caps.compile["fullgraph"] is False


def test_compiled_backends_built_one_after_another_do_not_add_up_to_the_recompile_limit(aot_eager):
    """Every task's network is a new set of guards on the one code object all variants
    run; without a fresh start per backend the third task here would pass the limit."""
    compiled = torch_common.compiled_variant(STBPBackend)
    with torch._dynamo.config.patch(recompile_limit=2):
        for task in ("synthetic", "fc_mnist", "fc_mnist_poisson"):
            case = parity_case(task)
            compiled(case.spec, case.weights, precision="fp64").forward_backward(case.batches[0])


def test_a_new_T_recompiles_and_a_new_batch_size_once(aot_eager):
    """What torch.compile's dynamic=None (the variants' recorded choice) does to a
    time-major network: the loop over T is unrolled, so every new T is a new graph;
    a second batch size recompiles with a dynamic batch, later ones reuse it."""
    from tasks import rng
    from tasks.parity import random_batch

    case = parity_case("fc_mnist_poisson")
    backend = torch_common.compiled_variant(STBPBackend)(case.spec, case.weights, precision="fp64")
    graphs = []
    for T, B in ((3, 4), (4, 4), (6, 4), (6, 6), (6, 8)):
        spec = case.spec.with_overrides(T=T, batch_size=B)
        backend.forward_backward(random_batch(spec, rng.stream(0, f"T={T}, B={B}")))
        graphs.append(backend.compile_info()["graphs"])
    assert graphs == [1, 2, 3, 4, 4]
    assert torch_common.COMPILE_DYNAMIC is None


def test_a_break_in_evaluation_alone_is_counted_too(aot_eager):
    def breaks_without_gradients(module, x):
        if not torch.is_grad_enabled():
            torch._dynamo.graph_break()
        return x

    case = parity_case("fc_mnist")
    backend = torch_common.compiled_variant(wrapping(breaks_without_gradients))(case.spec, case.weights,
                                                                                precision="fp64")
    backend.gradients(case.batches[0])
    assert backend.compile_info()["graph_breaks"] == 0
    backend.evaluate(case.batches[0])
    by_call = backend.compile_info()["network"]["graph_breaks_by_call"]
    assert by_call["training, gradients"] == 0 and by_call["evaluation, no gradients"] >= 1
    assert backend.compile_info()["graph_breaks"] == by_call["evaluation, no gradients"]


def test_an_internal_error_of_dynamo_while_tracing_is_a_failure_to_compile():
    def traced():
        import torch._dynamo.symbolic_convert as where  # noqa: F401 (an assertion raised inside dynamo)
        exec(compile("def f():\n    assert False, 'should not be called on root SubgraphTracer'\n",
                     where.__file__, "exec"), namespace := {})
        namespace["f"]()

    with pytest.raises(AssertionError) as raised:
        traced()
    assert torch_common._failed_compiling(raised.value)
    with pytest.raises(RuntimeError) as ran:
        torch.zeros(2) @ torch.zeros(3)
    assert not torch_common._failed_compiling(ran.value)


def test_inductor_caches_in_the_users_spikebench_cache_unless_told_otherwise(tmp_path):
    """Every process of a run (the suite's points, Slurm jobs, asv) finds the same inductor
    cache, so a second run is warm; an explicit TORCHINDUCTOR_CACHE_DIR wins."""
    import subprocess
    import sys

    from tests.conftest import ROOT, subprocess_env

    probe = ("import backends.torch_common, torch._inductor.config; "
             "from torch._inductor.runtime.cache_dir_utils import cache_dir; print(cache_dir())")

    def cache_of(**env) -> str:
        run_env = subprocess_env(**env)
        if "TORCHINDUCTOR_CACHE_DIR" not in env:  # not the one this process's import set
            run_env.pop("TORCHINDUCTOR_CACHE_DIR", None)
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=run_env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip().splitlines()[-1]

    assert cache_of(XDG_CACHE_HOME=str(tmp_path / "xdg")) == str(tmp_path / "xdg" / "spikebench" / "inductor")
    assert cache_of(XDG_CACHE_HOME=str(tmp_path / "xdg"), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "mine")) == \
        str(tmp_path / "mine")


def test_an_error_raised_below_dynamo_compiling_a_frame_is_a_failure_to_compile():
    """Dynamo's guards run generated code: an error there (spikingjelly:compile's IndexError)
    is dynamo failing to compile, not the step's error; the same error elsewhere is not."""
    compiling = {}
    exec(compile("def compile_frame(build):\n    return build()\n", "/venv/torch/_dynamo/convert_frame.py", "exec"),
         compiling)
    exec(compile("def guard():\n    return [][0]\n", "<string>", "exec"), compiling)
    with pytest.raises(IndexError) as below:
        compiling["compile_frame"](compiling["guard"])
    with pytest.raises(IndexError) as elsewhere:
        compiling["guard"]()
    assert torch_common._failed_compiling(below.value)
    assert not torch_common._failed_compiling(elsewhere.value)


def test_a_record_says_how_much_inductors_on_disk_cache_gave_its_compile_time(tmp_path, monkeypatch):
    # a warm cache shortens the compile time several-fold: the count says which kind a figure is
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    case = parity_case("fc_mnist")
    compiled = torch_common.compiled_variant(STBPBackend)
    counts = []
    for _ in range(2):
        backend = compiled(case.spec, case.weights, precision="fp64")
        assert backend.compile_info()["inductor_cache"] == {"hit": 0, "miss": 0}  # nothing compiled yet
        backend.gradients(case.batches[0])
        counts.append(backend.compile_info()["inductor_cache"])
    cold, warm = counts
    assert cold["hit"] == 0 and cold["miss"] >= 1  # an empty cache: every graph compiled anew
    assert warm == {"hit": cold["miss"], "miss": 0}  # the same shapes again: every graph found there


def test_a_cuda_graph_variant_runs_on_cuda_only_and_a_graph_run_without_one_is_unavailable():
    graphs = torch_common.compiled_variant(STBPBackend, mode=torch_common.CUDA_GRAPHS_MODE, variant="cudagraphs")
    assert graphs.__name__ == "STBPCudaGraphsBackend" and graphs.capabilities().devices == ("cuda",)
    assert graphs.capabilities().compile["mode"] == "reduce-overhead"
    assert graphs.capabilities().refusal("fc_mnist", "cpu", "fp32") == "does not run on cpu"
    # let onto the CPU, inductor runs its graphs without CUDA graphs: never this variant's row

    class OnTheCPU(graphs):
        @classmethod
        def capabilities(cls):
            return dataclasses.replace(graphs.capabilities(), devices=("cpu",))

    case = parity_case("fc_mnist")
    backend = OnTheCPU(case.spec, case.weights, precision="fp64")
    with pytest.raises(BackendUnavailable, match=r"network and loss \(training, gradients\) ran 1 graph\(s\) "
                                                 r"without CUDA graphs"):
        backend.gradients(case.batches[0])
