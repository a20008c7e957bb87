"""The performance floor (tasks/floor.py): hand-counted work, the roofline, the
table of docs/performance.md, and measured times as multiples."""

import re
from pathlib import Path

import pytest

from tasks import floor
from tasks.result import Result
from tasks.specs import get_spec

ROOT = Path(__file__).resolve().parent.parent


def test_fc_mnist_work_counted_by_hand():
    spec = get_spec("fc_mnist")
    T, B = 25, 128
    flops = (
        2 * 784 * 1000 * B * 2  # fc1: a static image, once per sample; backward: weight gradient only
        + 2 * 1000 * 10 * T * B * 3  # fc2: forward, weight and input gradients
        + 15 * (1000 + 10) * T * B  # neurons: 5 forward, 10 backward per neuron-step
        + 12 * (784 * 1000 + 1000 + 1000 * 10 + 10)  # Adam
    )
    assert sum(op.flops for op in floor.step_ops(spec, "fp32")) == flops
    without_adam = sum(op.flops for op in floor.step_ops(spec, "fp32", training=False))
    assert without_adam == flops - 12 * 795010


def test_lif_layer_is_a_matrix_product_and_no_optimiser():
    spec = get_spec("lif_layer", neurons=4096)
    rows, n = 500 * 16, 4096
    ops = floor.step_ops(spec, "bf16", training=spec.trainable)
    assert not any(op.name == "Adam" for op in ops)
    matmul = sum(op.flops for op in ops if op.tensor_core)
    assert matmul == 2 * rows * n * n * 2  # forward and the weight gradient (the input is data)
    fwd = next(op for op in ops if op.name == "fc forward")
    assert fwd.bytes == 2 * (rows * n * 2 + n * n)  # bf16 operands: input, output, weights


def test_bf16_moves_fewer_bytes_and_the_floor_is_a_roofline():
    spec = get_spec("dsrn_tdbn")
    f32, b16 = floor.floor(spec, "fp32"), floor.floor(spec, "bf16")
    assert b16.flops == f32.flops and b16.bytes < f32.bytes
    assert b16.seconds < f32.seconds
    for f in (f32, b16):
        assert max(f.compute_seconds, f.memory_seconds) <= f.seconds <= f.compute_seconds + f.memory_seconds
    # fp32 is compute-bound on CUDA cores: about 1.3 TFLOP at T = 2, batch 64
    assert 1.2e12 < f32.flops < 1.4e12
    assert f32.compute_seconds > 5 * f32.memory_seconds
    # the work is linear in T
    f4 = floor.floor(get_spec("dsrn_tdbn", T=4), "fp32")
    assert f4.flops == pytest.approx(2 * f32.flops, rel=0.01)


def test_op_seconds_takes_the_larger_bound():
    gpu = floor.GPUS["h100"]
    compute = floor.Op("mm", flops=989.4e12, bytes=1.0, tensor_core=True)
    assert compute.seconds(gpu, "bf16") == pytest.approx(1.0)
    assert compute.seconds(gpu, "fp32") == pytest.approx(989.4 / 66.9)
    memory = floor.Op("copy", flops=1.0, bytes=3.35e12)
    assert memory.seconds(gpu, "bf16") == pytest.approx(1.0)


def test_the_documented_table_is_the_tools_output():
    doc = (ROOT / "docs" / "performance.md").read_text()
    found = re.search(r"<!-- floor-table: python -m tasks.floor --gpu h100 --precision fp32,bf16 -->\n(.*?)\n"
                      r"<!-- /floor-table -->", doc, re.S)
    assert found, "docs/performance.md lost its floor table"
    assert found.group(1).strip() == floor.table(["fp32", "bf16"], "h100")


def _measurement(tmp_path: Path, backend: str, t: float, device: str = "cuda", task: str = "dsrn_tdbn",
                 **overrides) -> Path:
    spec = get_spec(task, **overrides)
    r = Result(task=task, backend=backend, kind="measurement", precision="fp32",
               device={"type": device, "name": "NVIDIA H100 80GB HBM3"},
               config={"task": spec.to_dict(), "run": {"device": device}})
    r.set_metric("train_step_time" if spec.trainable else "forward_backward_time", t)
    return r.save(tmp_path / f"{backend.replace(':', '-')}-{device}.json")


def test_measured_times_become_multiples_of_the_floor(tmp_path):
    _measurement(tmp_path, "stbp", 0.0434)
    _measurement(tmp_path, "snntorch", 99.0, device="cpu")  # not a GPU measurement: left out
    (tmp_path / "parity.json").write_text('{"rows": []}')  # not a result record: skipped
    text = floor.table(["fp32"], "h100", tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| dsrn_tdbn (T=2, B=64)"))
    f = floor.floor(get_spec("dsrn_tdbn"), "fp32")
    assert f"stbp 43.40 ms ({0.0434 / f.seconds:.1f}x)" in row
    assert "snntorch" not in text
    assert "not measured" in text  # the other points


def test_an_edition_moved_aside_is_not_measured_again(tmp_path):
    _measurement(tmp_path, "stbp", 0.0434)
    (tmp_path / ".editions" / "c8f14ce3f190").mkdir(parents=True)
    _measurement(tmp_path / ".editions" / "c8f14ce3f190", "stbp", 0.0512)  # the older code's record
    row = next(line for line in floor.table(["fp32"], "h100", tmp_path).splitlines()
               if line.startswith("| dsrn_tdbn (T=2, B=64)"))
    assert row.count("stbp ") == 1 and "stbp 43.40 ms" in row


def test_command_line(capsys, tmp_path):
    assert floor.main(["--precision", "bf16"]) == 0
    assert "| lif_layer (T=500, B=16, N=16384) | bf16 |" in capsys.readouterr().out
    assert floor.main(["--precision", "fp8"]) == 2
    assert "precision" in capsys.readouterr().err
    assert floor.main(["--results", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit) as exc:
        floor.main(["--gpu", "a100"])
    assert exc.value.code == 2


# ---------------------------------------------------------------- the CPU floor
def _calibration(path: Path, fp32: float = 200e9, bf16: float = 400e9, bandwidth: float = 40e9) -> Path:
    from tasks.calibrate import Calibration

    cal = Calibration(cpu="Test CPU", threads=2, gemm={"fp32": {"torch.mm": fp32 / 2, "jax.numpy.dot (XLA)": fp32},
                                                      "bf16": {"torch.mm": bf16}}, bandwidth=bandwidth)
    path.write_text(__import__("json").dumps(cal.to_dict()))
    return path


def test_the_cpu_floor_counts_every_flop_at_the_best_gemm_rate_of_its_precision(tmp_path):
    from tasks.calibrate import Calibration

    cal = Calibration(**__import__("json").loads(_calibration(tmp_path / "c.json").read_text()))
    cpu = floor.cpu_device(cal)
    assert cpu.peak_flops["fp32"] == 200e9 and cpu.peak_flops["tf32"] == 200e9 and cpu.peak_flops["bf16"] == 400e9
    spec = get_spec("lif_layer", neurons=2048)
    f = floor.floor(spec, "fp32", cpu)
    ops = floor.step_ops(spec, "fp32", training=False)
    assert f.seconds == pytest.approx(sum(max(op.flops / 200e9, op.bytes / 40e9) for op in ops))
    # the matrix products dominate: the floor is near FLOPs / the best rate (XLA's here, not torch.mm's)
    assert f.flops / 200e9 <= f.seconds < 1.1 * f.flops / 200e9


def test_the_cpu_table_takes_the_cpu_profiles_points_and_cpu_measurements(tmp_path, capsys):
    cal = _calibration(tmp_path / "cal.json")
    results = tmp_path / "results"
    results.mkdir()
    _measurement(results, "brainstate", 0.5, device="cpu", task="lif_layer", T=500, batch_size=16, neurons=2048)
    assert floor.main(["--device", "cpu", "--calibration", str(cal), "--precision", "fp32",
                       "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "Test CPU, 2 threads" in out and "jax.numpy.dot (XLA) 200" in out
    row = next(line for line in out.splitlines() if line.startswith("| lif_layer (T=500, B=16, N=2048)"))
    f = floor.floor(get_spec("lif_layer", neurons=2048), "fp32", floor.cpu_device(floor.cpu_calibration(cal)))
    assert f"brainstate 500.00 ms ({0.5 / f.seconds:.1f}x)" in row
    assert "| dsrn_tdbn (T=2, B=16, width 0.25) | fp32 |" in out  # the cpu profile's sizes
    assert floor.main(["--calibration", str(cal)]) == 2  # a calibration is for the CPU
    (tmp_path / "bad.json").write_text("{}")
    assert floor.main(["--device", "cpu", "--calibration", str(tmp_path / "bad.json")]) == 2


def test_a_fresh_calibration_times_only_the_precisions_asked_for(tmp_path, capsys, monkeypatch):
    from tasks import calibrate

    timed = []
    monkeypatch.setattr(calibrate, "GEMMS", {"fake": lambda p: timed.append(p) or {"fp32": 1e11, "bf16": 2e11}[p]})
    monkeypatch.setattr(calibrate, "copy_bandwidth", lambda: 2e10)
    cal = tmp_path / "cal.json"
    assert floor.main(["--device", "cpu", "--calibration", str(cal), "--precision", "fp32"]) == 0
    assert timed == ["fp32"]  # no bf16: on a CPU without bf16 instructions it takes many minutes
    capsys.readouterr()
    assert floor.main(["--device", "cpu", "--calibration", str(cal), "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no bf16 rates" in err and timed == ["fp32"]  # read, not timed again
    assert floor.main(["--device", "cpu", "--precision", "bf16"]) == 0 and timed == ["fp32", "fp32", "bf16"]


def test_records_of_another_machine_are_not_measured_against_a_calibration(tmp_path, capsys):
    import json

    from tasks.machine import fingerprint

    zen3 = {"cpu": "AMD EPYC", "cpu_family": "25", "model": "1", "isa": ["avx2"], "threads": 2, "gpus": []}
    zen4 = zen3 | {"model": "17", "isa": ["avx2", "avx512f"]}
    cal = _calibration(tmp_path / "cal.json")
    results = tmp_path / "results"
    results.mkdir()
    record = _measurement(results, "brainstate", 0.5, device="cpu", task="lif_layer", T=500, batch_size=16,
                          neurons=2048)
    args = ["--device", "cpu", "--calibration", str(cal), "--precision", "fp32", "--results", str(results)]
    data = json.loads(record.read_text())
    data["host"] = {"machine_fingerprint": fingerprint(zen4), "machine": zen4}
    record.write_text(json.dumps(data))
    assert floor.main(args) == 0  # a calibration from before they said where: nothing to compare
    cal.write_text(json.dumps(json.loads(cal.read_text()) | {"machine": zen3}))
    assert floor.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{fingerprint(zen4)} (AMD EPYC (family 25, model 17)" in err
    cal.write_text(json.dumps(json.loads(cal.read_text()) | {"machine": zen4}))
    assert floor.main(args) == 0


def test_targets_compare_a_backend_with_the_best_other_and_the_floor(tmp_path, capsys):
    cal = floor.cpu_device(floor.cpu_calibration(_calibration(tmp_path / "cal.json")))
    lif = dict(device="cpu", task="lif_layer", T=500, batch_size=16)
    f512 = floor.floor(get_spec("lif_layer", neurons=512), "fp32", cal).seconds
    f2048 = floor.floor(get_spec("lif_layer", neurons=2048), "fp32", cal).seconds
    results = tmp_path / "results"
    for n in (512, 2048):
        (results / str(n)).mkdir(parents=True)
    for name, t512, t2048 in (("ours", 2.0 * f512, 1.2 * f2048), ("a", 3.1 * f512, 1.3 * f2048),
                              ("b", 3.5 * f512, 1.1 * f2048)):
        _measurement(results / "512", name, t512, neurons=512, **lif)
        _measurement(results / "2048", name, t2048, neurons=2048, **lif)
    text = floor.targets("fp32", cal, results, "ours")
    rows = {line.split(" |")[0]: line for line in text.splitlines()[2:]}
    assert len(rows) == 2  # only the points where "ours" and another were measured
    n512 = rows["| lif_layer (T=500, B=16, N=512)"]
    assert "| a " in n512 and "1.55x faster" in n512 and "| 2.00x |" in n512 and "met (faster)" in n512
    n2048 = rows["| lif_layer (T=500, B=16, N=2048)"]
    assert "| b " in n2048 and "slower" in n2048 and "| 1.20x |" in n2048 and "met (near the floor)" in n2048
    _measurement(results / "2048", "ours", 1.3 * f2048, neurons=2048, **lif)  # overwrites: now neither
    assert "not met" in floor.targets("fp32", cal, results, "ours")
    assert floor.main(["--device", "cpu", "--calibration", str(tmp_path / "cal.json"), "--precision", "fp32",
                       "--results", str(results), "--against", "ours"]) == 0
    assert "| point | ours | best other |" in capsys.readouterr().out
    assert floor.main(["--against", "ours"]) == 2  # needs --results
    assert "--against needs --results" in capsys.readouterr().err


def _documented(marker: str, extra: str = "") -> str:
    """The body of docs/performance.md's table under ``marker``, written by the command in its comment."""
    doc = (ROOT / "docs" / "performance.md").read_text()
    found = re.search(rf"<!-- {marker}: python -m tasks.floor --device cpu --calibration "
                      rf"results/calibration-cpu.json --precision fp32 --results results/cpu{extra} -->\n(.*?)\n"
                      rf"<!-- /{marker} -->", doc, re.S)
    assert found, f"docs/performance.md lost its {marker}"
    return found.group(1).strip()


def _committed_cpu():
    from tasks.calibrate import Calibration

    path = ROOT / "results" / "calibration-cpu.json"
    assert path.is_file(), "the committed CPU calibration is missing"
    cal = Calibration(**__import__("json").loads(path.read_text()))  # read only: never calibrate in a test
    return cal, floor.cpu_device(cal)


def test_the_documented_cpu_table_is_the_tools_output_on_the_committed_calibration_and_timings():
    cal, cpu = _committed_cpu()
    want = floor.calibration_line(cal) + "\n\n" + floor.table(["fp32"], cpu, ROOT / "results" / "cpu")
    assert _documented("cpu-floor-table") == want.strip(), "rebuild the table: python -m tasks.floor --device cpu ..."


def test_the_documented_targets_table_is_the_tools_output_on_the_committed_timings():
    _, cpu = _committed_cpu()
    want = floor.targets("fp32", cpu, ROOT / "results" / "cpu", "stbp:fused")
    assert _documented("cpu-targets-table", " --against stbp:fused") == want.strip(), \
        "rebuild the table: python -m tasks.floor ... --against stbp:fused"
