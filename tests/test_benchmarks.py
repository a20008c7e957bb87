"""benchmarks/: the asv configuration and suites (profiles read, unavailable backends skipped, failures visible)."""

import json

import numpy as np
import pytest

import backends
from backends import BackendEntry
from tasks.errors import SpikebenchError
from tests.conftest import ROOT


# ---------------------------------------------------------------- activity counts
# ---------------------------------------------------------------- timing
# ---------------------------------------------------------------- sweep
# ---------------------------------------------------------------- asv suite
def test_asv_configuration_is_valid_json_with_the_required_settings():
    text = (ROOT / "asv.conf.json").read_text()
    conf = json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))
    assert conf["environment_type"] == "existing" and conf["branches"] == ["main"]
    assert conf["results_dir"] == ".asv/results" and conf["html_dir"] == "reports/asv"
    assert conf["launch_method"] == "spawn" and conf["benchmark_dir"] == "benchmarks"


def test_asv_suites_skip_unavailable_backends_and_fail_visibly_on_failures(monkeypatch):
    from benchmarks import config
    from benchmarks.bench_steps import StepSuite
    from benchmarks.bench_training import TrainingSuite

    assert StepSuite.param_names == ["backend", "task", "T"]
    assert set(StepSuite.params[0]) == set(config.BACKENDS)
    monkeypatch.setitem(backends.REGISTRY, "ghost",
                        BackendEntry("ghost", "x:Y", ("no_such_module_abc",), ""))
    task, T = next(iter(config.STEP_POINTS))
    with pytest.raises(NotImplementedError):
        StepSuite().setup("ghost", task, T)
    with pytest.raises(NotImplementedError):  # a combination the profile does not list is skipped
        StepSuite().setup("stbp", task, 10**6)
    with pytest.raises(NotImplementedError):
        TrainingSuite().setup({}, "ghost", "fc_mnist")
    suite = TrainingSuite()
    suite.setup({"stbp|fc_mnist": {"status": "oom", "message": "out of memory", "accuracy": None}}, "stbp", "fc_mnist")
    with pytest.raises(RuntimeError, match="oom"):  # a failed run is a failed benchmark, not n/a
        suite.track_test_accuracy(None, "stbp", "fc_mnist")
    suite.setup({"stbp|fc_mnist": {"status": "ok", "message": "", "time_to_accuracy": None}}, "stbp", "fc_mnist")
    assert np.isnan(suite.track_time_to_accuracy(None, "stbp", "fc_mnist"))  # not reached: n/a


def test_asv_reads_the_suites_profiles(monkeypatch):
    import importlib

    from benchmarks import config
    from tasks.profiles import get_profile

    monkeypatch.setenv("SPIKEBENCH_ASV_PROFILE", "smoke")
    smoke = importlib.reload(config)
    try:
        profile = get_profile("smoke")
        assert smoke.PROFILE.name == "smoke" and smoke.DEVICE == profile.device
        listed = {(r.task, T) for r in profile.timing if r.task != "lif_layer" for T in r.Ts}
        assert set(smoke.STEP_POINTS) == listed
        assert set(smoke.LAYER_POINTS) == {n for r in profile.timing if r.task == "lif_layer" for n in r.neurons}
        assert set(smoke.TRAIN_ROWS) == {r.task for r in profile.train}
        # the compiled variants only where the profile runs them: no compile on the other points
        from tasks.profiles import is_compiled_variant

        compiled = [b for b in smoke.BACKENDS if is_compiled_variant(b)]
        assert compiled
        for name in compiled:
            for task, T in smoke.STEP_POINTS:
                if (task, T) == ("fc_mnist", 4):
                    assert smoke.step_settings(name, task, T)["T"] == 4
                else:
                    with pytest.raises(NotImplementedError, match="does not time"):
                        smoke.step_settings(name, task, T)
            assert not [n for n in smoke.LAYER_POINTS if name in smoke.LAYER_POINTS[n].backends]
            assert [t for t, names in smoke.TRAIN_BACKENDS.items() if name in names] == ["fc_mnist"]
        assert smoke.TRAIN_ROWS["fc_mnist"]["seed"] == 0
        task, T = next(iter(smoke.STEP_POINTS))
        assert smoke.step_settings("stbp", task, T)["T"] == T
        monkeypatch.setenv("SPIKEBENCH_ASV_PROFILE", "no-such-profile")
        with pytest.raises(SpikebenchError):
            importlib.reload(config)
    finally:
        monkeypatch.delenv("SPIKEBENCH_ASV_PROFILE")
        importlib.reload(config)


def test_asv_keeps_the_backends_asked_for(monkeypatch):
    import importlib

    from benchmarks import config

    monkeypatch.setenv("SPIKEBENCH_ASV_PROFILE", "smoke")
    monkeypatch.setenv("SPIKEBENCH_ASV_BACKENDS", "stbp:compile,stbp")
    try:
        kept = importlib.reload(config)
        assert kept.BACKENDS == ["stbp", "stbp:compile"]  # the profile's order
        assert set(kept.TRAIN_BACKENDS["fc_mnist"]) == {"stbp", "stbp:compile"}
        assert kept.TRAIN_BACKENDS["synthetic"] == ["stbp"]  # an eager row: no compiled variant
        monkeypatch.setenv("SPIKEBENCH_ASV_BACKENDS", "stbp,ghost")
        with pytest.raises(SpikebenchError, match="ghost"):
            importlib.reload(config)
    finally:
        monkeypatch.delenv("SPIKEBENCH_ASV_BACKENDS")
        monkeypatch.delenv("SPIKEBENCH_ASV_PROFILE")
        importlib.reload(config)
