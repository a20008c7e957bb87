"""NIR graphs: the float64 reference against the tasks' own reference, its refusals, the command's
one-line errors, and the readers against the reference (docs/nir.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks import reference
from tasks.nir_graph import simulate
from tests.conftest import ROOT

nir = pytest.importorskip("nir")
from tasks import nir as tasks_nir  # noqa: E402  (needs the nir package)
from tests.test_nir_graph import conv_graph  # noqa: E402


def lif_graph(n_in=5, n=4, tau_steps=2.0, seed=1):
    w = np.random.default_rng(seed).normal(0, 1.0, (n, n_in))
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n_in])}), "fc": nir.Linear(weight=w),
                               "lif": tasks_nir.lif_node(n, tau_steps, 1.0),
                               "output": nir.Output(output_type={"output": np.array([n])})},
                        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")]), w


def test_the_reference_of_an_exported_lif_layer_is_the_tasks_hard_reset_neuron():
    g = tasks_nir.export_graph("lif_layer", neurons=16)
    x = np.random.default_rng(0).random((30, 3, 16))
    got = simulate(tasks_nir.neutral(g), x, tasks_nir.DT)
    w = g.nodes["fc"].weight
    spikes, membrane = reference.hard_reset_lif(x @ w.T, tau=2.0, v_th=1.0)
    assert got.outputs["output"].sum() > 0  # the comparison sees spikes
    np.testing.assert_array_equal(got.outputs["output"], spikes)
    np.testing.assert_allclose(got.membranes["lif"], membrane, rtol=0, atol=1e-12)


def test_fc_mnist_poisson_exports_both_layers_from_the_shared_weights():
    from tasks.specs import get_spec
    from tasks.weights import initial_weights

    g = tasks_nir.export_graph("fc_mnist_poisson")
    w = initial_weights(get_spec("fc_mnist_poisson"))
    np.testing.assert_array_equal(g.nodes["fc1"].weight, w["fc1.weight"])
    np.testing.assert_array_equal(g.nodes["fc2"].weight, w["fc2.weight"])
    np.testing.assert_allclose(g.nodes["lif2"].tau, 100 * tasks_nir.DT)


@pytest.mark.parametrize("task", sorted(tasks_nir.NOT_EXPRESSIBLE))
def test_a_task_nir_cannot_express_is_refused_with_why(task, tmp_path, capsys):
    assert tasks_nir.main(["export", "--task", task, "-o", str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot express" in err and tasks_nir.NOT_EXPRESSIBLE[task] in err


def _one_line_exit_2(argv, capsys, expect):
    assert tasks_nir.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and expect in err, err


def test_bad_files_are_one_line_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.nir"
    junk.write_text("not hdf5")
    _one_line_exit_2(["fidelity", str(junk), "--out", str(tmp_path)], capsys, "is not a NIR file")
    _one_line_exit_2(["fidelity", str(tmp_path / "missing.nir"), "--out", str(tmp_path)], capsys, "no such file")
    cyc = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                              "a": nir.Linear(weight=np.eye(2)), "b": nir.Linear(weight=np.eye(2)),
                              "output": nir.Output(output_type={"output": np.array([2])})},
                       edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    nir.write(str(tmp_path / "cyc.nir"), cyc)
    _one_line_exit_2(["fidelity", str(tmp_path / "cyc.nir"), "--out", str(tmp_path)], capsys, "cycle through a, b")
    unchained = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                    "a": nir.Linear(weight=np.ones((2, 4))),
                                    "output": nir.Output(output_type={"output": np.array([2])})},
                             edges=[("input", "a"), ("a", "output")])
    nir.write(str(tmp_path / "unchained.nir"), unchained)
    _one_line_exit_2(["fidelity", str(tmp_path / "unchained.nir"), "--out", str(tmp_path)], capsys,
                     "gets a sample of shape [3]")
    assert not list(tmp_path.glob("*.json"))  # a refused graph writes no record


def test_compare_counts_mismatches_and_fails_on_non_finite():
    ref = np.array([[[0.0, 1.0]], [[1.0, 0.0]]])
    got = ref.copy()
    got[1, 0, 1] = 1.0
    r = tasks_nir.compare(ref, got, spikes=True)
    assert (r["mismatches"], r["first_mismatch_step"]) == (1, 1)
    got[0, 0, 0] = np.nan
    assert tasks_nir.compare(ref, got, spikes=True) == {"ok": False, "problem": "1 non-finite values"}


def test_a_missing_reader_is_unavailable_and_the_others_run(monkeypatch):
    g, _ = lif_graph()
    real = tasks_nir.load_reader
    monkeypatch.setattr(tasks_nir, "load_reader",
                        lambda fw: (None, "ModuleNotFoundError: No module named 'norse'") if fw == "norse" else real(fw))
    recs = {r["framework"]: r for r in tasks_nir.fidelity(g, "g", 5, 1, 0, ("norse", "snntorch", "brainstate"))}
    assert recs["norse"] == recs["norse"] | {"status": "unavailable", "reason": "ModuleNotFoundError: No module named 'norse'"}
    assert recs["brainstate"]["status"] == "unavailable" and "no NIR reader" in recs["brainstate"]["reason"]
    assert recs["snntorch"]["status"] in ("ok", "unavailable")  # whatever snnTorch does, it was tried


def _readers_that_run(graph, T=12, batch=2):
    recs = tasks_nir.fidelity(graph, "g", T, batch, 0, tasks_nir.READERS)
    for r in recs:
        if r["status"] == "unavailable":
            assert r["reason"].count("\n") == 0 and ("failed:" in r["reason"] or "Error" in r["reason"])
    return {r["framework"]: r for r in recs if r["status"] != "unavailable"}


def test_four_readers_take_the_lif_layer_graph_and_norse_and_snntorch_match_the_reference():
    g = tasks_nir.export_graph("lif_layer", neurons=8)
    ran = _readers_that_run(g, T=40, batch=3)
    assert len(ran) >= 4, sorted(ran)
    for fw in ("norse", "snntorch"):  # their LIF is forward Euler at the reference's dt with a reset to 0
        assert ran[fw]["spikes"]["reference_spikes"] > 0
        assert ran[fw]["spikes"]["mismatches"] == 0, ran[fw]


def test_a_convolutional_graph_goes_through_norse_exactly_and_every_other_reader_says_why_not():
    # snnTorch (no SumPool2d), Sinabs, Rockpool (no Conv2d) and SpikingJelly refuse it (docs/nir.md)
    g, _, _ = conv_graph()
    ran = _readers_that_run(g)
    assert ran["norse"]["spikes"]["reference_spikes"] > 0 and ran["norse"]["spikes"]["mismatches"] == 0
    assert all(r["spikes"]["ok"] for r in ran.values()), ran


def test_export_then_fidelity_writes_one_record_per_framework(tmp_path, capsys):
    path = tmp_path / "lif.nir"
    assert tasks_nir.main(["export", "--task", "lif_layer", "--neurons", "8", "-o", str(path)]) == 0
    assert tasks_nir.main(["fidelity", str(path), "--T", "5", "--batch-size", "1", "--framework", "norse,brainstate",
                           "--out", str(tmp_path / "res")]) == 0
    recs = [json.loads(p.read_text()) for p in sorted((tmp_path / "res").glob("*.json"))]
    assert [r["framework"] for r in recs] == ["brainstate", "norse"]
    assert recs[1]["graph"] == "lif" and recs[1]["spikes"]["elements"] == 5 * 8


def test_membranes_norse_to_float32_and_snntorch_in_its_documented_units():
    g = tasks_nir.export_graph("lif_layer", neurons=8)
    recs = {r["framework"]: r for r in tasks_nir.fidelity(g, "g", 40, 3, 0, ("norse", "snntorch"))}
    assert recs["norse"]["membranes"]["lif"]["max_abs_diff"] < 1e-5
    # snnTorch keeps R dt/tau (here 1/2) out of the membrane and divides its threshold by it instead
    x = tasks_nir.spike_input((8,), 40, 3, 0)
    ref = simulate(tasks_nir.neutral(g), x, tasks_nir.DT)
    from backends.snntorch import nir_reader
    (out, mem), why = tasks_nir.run_reader(nir_reader, g, x, tasks_nir.DT)
    assert why is None and ref.outputs["output"].sum() > 0
    np.testing.assert_array_equal(out, ref.outputs["output"])
    np.testing.assert_allclose(mem["lif"], 2 * ref.states["lif"], atol=1e-5)


def test_the_report_shows_the_matrix_with_every_reason(tmp_path):
    from reports.load import Collection
    from reports.nir import nir_view

    g = tasks_nir.export_graph("lif_layer", neurons=8)
    recs = tasks_nir.fidelity(g, "lif_layer", 10, 1, 0, ("norse", "brainstate"))
    view = nir_view(Collection(root=tmp_path, nir=[(f"{r['framework']}.json", r) for r in recs]))
    assert view["graphs"] == ["lif_layer"]
    cells = {m["framework"]: m["cells"][0] for m in view["matrix"]}
    assert cells["norse"]["text"] == f"{recs[0]['spikes']['mismatches']} / 80"
    assert cells["brainstate"] == {"state": "unavailable", "text": "unavailable", "detail": tasks_nir.NO_READER["brainstate"]}


def test_the_loader_keeps_nir_records_apart_from_results(tmp_path):
    from reports.load import load_results

    g = tasks_nir.export_graph("lif_layer", neurons=8)
    tasks_nir.save_records(tasks_nir.fidelity(g, "lif_layer", 5, 1, 0, ("brainstate",)), tmp_path / "nir")
    committed = sorted((ROOT / "results" / "cpu" / "timing-fp32").rglob("*.json"))[0]  # a result record beside it
    (tmp_path / committed.name).write_text(committed.read_text())
    warnings = []
    c = load_results(tmp_path, warn=warnings.append)
    assert len(c.nir) == 1 and len(c.results) == 1 and not warnings, warnings


def test_measure_nir_times_each_reader_with_its_fidelity_row(tmp_path, capsys):
    from tasks import measure
    from tasks.catalogue import unit_of
    from tasks.result import Result

    path = tmp_path / "mine.nir"
    nir.write(str(path), tasks_nir.export_graph("lif_layer", neurons=8))
    out = tmp_path / "out"
    assert measure.main(["--nir", str(path), "--backend", "norse,rockpool", "--T", "5", "--batch-size", "2",
                         "--warmup", "0", "--out", str(out)]) == 0
    norse = Result.from_dict(json.loads((out / "mine-norse.json").read_text()))
    assert norse.status == "ok" and norse.task == "nir:mine" and norse.kind == "measurement"
    for key in ("inference", "forward_backward"):
        assert len(norse.timings[key].samples) == 10 and norse.metrics[f"{key}_time"].unit == unit_of(f"{key}_time")
    assert norse.extra["fidelity"]["spikes"]["elements"] == 5 * 2 * 8
    rock = json.loads((out / "mine-rockpool.json").read_text())
    assert rock["status"] == "unavailable" and "tau_mem" in rock["message"]


def test_measure_nir_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from tasks import measure

    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"\x00not a graph")
    for argv, expect in (
            (["--nir", str(junk), "--backend", "all", "--out", str(tmp_path / "o")], "is not a NIR file"),
            (["--nir", str(junk), "--backend", "brainstate", "--out", str(tmp_path / "o")], "no NIR reader for brainstate")):
        assert measure.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err, err
    with pytest.raises(SystemExit) as stop:  # neither --task nor --nir: argparse's one line
        measure.main(["--backend", "all", "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and "give --task or --nir" in capsys.readouterr().err


def test_the_committed_conv_example_records_are_what_the_command_gives():
    committed = {p.stem.split("__")[1]: json.loads(p.read_text())
                 for p in (ROOT / "results" / "nir").glob("conv_example__*.json")}
    assert committed, "results/nir holds the conv_example records (python -m tasks.nir fidelity, docs/nir.md)"
    first = next(iter(committed.values()))
    fresh = tasks_nir.fidelity(tasks_nir.conv_example(), "conv_example", first["T"], first["batch"], first["seed"],
                               tuple(committed))
    for r in fresh:
        want = committed[r["framework"]]
        assert (r["status"], r.get("reason"), r.get("spikes")) == (want["status"], want.get("reason"), want.get("spikes"))
        for node, v in r.get("membranes", {}).items():
            assert v.get("max_abs_diff") == pytest.approx(want["membranes"][node].get("max_abs_diff"), rel=1e-6, abs=1e-9)


def test_fc_mnist_poisson_goes_through_four_readers():
    # its Linear layers are written as Affine with a zero bias: Sinabs reads no nir.Linear (docs/nir.md)
    g = tasks_nir.export_graph("fc_mnist_poisson")
    assert all(isinstance(g.nodes[k], nir.Affine) and not np.any(g.nodes[k].bias) for k in ("fc1", "fc2"))
    ran = _readers_that_run(g, T=6, batch=1)
    assert {"norse", "snntorch", "sinabs", "spyx"} <= set(ran), sorted(ran)
    assert ran["norse"]["membrane"]["max_abs_diff"] < 1e-5


def _sweep(graph_path, out, *extra):
    from tasks import sweep

    return sweep.main(["--nir", str(graph_path), "--backend", "norse,rockpool", "--T", "3,5", "--batch-size", "2",
                       "--warmup", "0", "--out", str(out), "--no-progress", *extra])


def test_a_sweep_of_a_graph_is_one_record_per_reader_and_T_and_resumes(tmp_path, capsys):
    from tasks.result import Result

    path = tmp_path / "mine.nir"
    nir.write(str(path), tasks_nir.export_graph("lif_layer", neurons=8))
    out = tmp_path / "sweep"
    assert _sweep(path, out) == 0
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["nir-mine-norse-T3.json", "nir-mine-norse-T5.json", "nir-mine-rockpool-T3.json",
                     "nir-mine-rockpool-T5.json"]
    norse = Result.load(out / "nir-mine-norse-T5.json")
    assert norse.status == "ok" and norse.task == "nir:mine" and norse.config["task"]["T"] == 5
    assert norse.extra["fidelity"]["spikes"]["elements"] == 5 * 2 * 8
    assert "4 measured, 0 already done" in capsys.readouterr().out
    # run again: the norse points are done (the orchestrator's one rule); a reader that could not
    # import the graph records no capabilities, so it is tried again, as a missing framework is
    stamp = (out / "nir-mine-norse-T5.json").stat().st_mtime_ns
    assert _sweep(path, out) == 0
    assert "2 measured, 2 already done" in capsys.readouterr().out
    assert (out / "nir-mine-norse-T5.json").stat().st_mtime_ns == stamp
    # an edited graph is another graph: measured again
    nir.write(str(path), tasks_nir.export_graph("lif_layer", neurons=8, seed=3))
    assert _sweep(path, out) == 0
    assert "4 measured, 0 already done" in capsys.readouterr().out


def test_a_sweep_of_a_graph_refuses_what_it_cannot_do_in_one_line(tmp_path, capsys):
    from tasks import sweep

    path = tmp_path / "mine.nir"
    nir.write(str(path), tasks_nir.export_graph("lif_layer", neurons=8))
    for extra, expect in ((["--device", "cuda"], "on the CPU in fp32"), (["--neurons", "4,8"], "its own"),
                          (["--measure", "epoch"], "measure throughput only")):
        assert _sweep(path, tmp_path / "o", *extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err, err
    assert sweep.main(["--nir", str(path), "--backend", "brainstate", "--out", str(tmp_path / "o")]) == 2
    assert "no NIR reader for brainstate" in capsys.readouterr().err
    assert sweep.main(["--nir", str(tmp_path / "none.nir"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_measure_nir_writes_one_framework_to_a_file_and_refuses_several(tmp_path, capsys):
    from tasks import measure

    path = tmp_path / "mine.nir"
    nir.write(str(path), tasks_nir.export_graph("lif_layer", neurons=8))
    common = ["--nir", str(path), "--T", "3", "--batch-size", "1", "--warmup", "0"]
    assert measure.main(common + ["--backend", "norse,snntorch", "--out", str(tmp_path / "x.json")]) == 2
    assert "holds one framework's record" in capsys.readouterr().err
    assert measure.main(common + ["--backend", "rockpool", "--out", str(tmp_path / "r.json")]) == 2  # unavailable
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "unavailable"


def test_a_profile_and_the_suite_take_graphs(tmp_path):
    import subprocess
    import sys

    from tasks.profiles import load_profiles

    path = tmp_path / "mine.nir"
    nir.write(str(path), tasks_nir.export_graph("lif_layer", neurons=8))
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[p]\nbackends = ["norse", "brainstate"]\n[[p.nir]]\ngraph = "{path}"\nT = [4, 8]\n'
                        f'batch_size = 2\n[q]\ndevice = "cuda"\n[[q.nir]]\ngraph = "{path}"\n')
    with pytest.raises(Exception, match="measured on the CPU"):
        load_profiles(profiles)
    profiles.write_text(profiles.read_text().split("[q]")[0])
    assert load_profiles(profiles)["p"].nir[0].Ts == (4, 8)
    run = subprocess.run([sys.executable, "-m", "tasks.suite", "--profiles", str(profiles), "--profile", "p",
                          "--part", "timing", "--list", "--out", str(tmp_path / "res"), "--nir", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    listed = [line.split()[1] for line in run.stdout.splitlines()[1:]]
    # the profile's row at T 4 and 8, the command line's graph at T 100; brainstate has no reader
    assert listed == ["nir/nir-mine-norse-T4.json", "nir/nir-mine-norse-T8.json", "nir/nir-mine-norse-T100.json"]
    parity_only = subprocess.run([sys.executable, "-m", "tasks.suite", "--profiles", str(profiles), "--profile", "p",
                                  "--part", "parity", "--list", "--nir", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert parity_only.returncode == 2 and "give a --part with timing" in parity_only.stderr
