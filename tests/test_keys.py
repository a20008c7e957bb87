"""reports/keys.py: the report's orders, colours, ids and the facts it tells about a setting."""

from __future__ import annotations

import re

import backends
from reports import keys
from tasks.result import Result


def test_backends_tasks_and_precisions_sort_in_their_fixed_order_unknown_last():
    names = ["zeta", "snntorch", "stbp", "alpha"]
    assert sorted(names, key=keys.backend_sort_key) == ["stbp", "snntorch", "alpha", "zeta"]
    assert sorted(["lif_layer", "nope", "synthetic"], key=keys.task_sort_key) == ["synthetic", "lif_layer", "nope"]
    assert sorted(["fp64", "int8", "bf16", "fp32"], key=keys.precision_sort_key) == ["fp32", "bf16", "fp64", "int8"]


def test_a_backend_keeps_its_registry_colour_and_an_unknown_one_a_stable_spare():
    assert keys.backend_color("snntorch") == backends.REGISTRY["snntorch"].color
    spare = keys.backend_color("not-registered")
    assert spare in keys.SPARE_COLORS and keys.backend_color("not-registered") == spare
    assert all(re.fullmatch(r"#[0-9A-Fa-f]{6}", keys.backend_color(n)) for n in backends.names())


def test_slugs_are_lower_case_ids_without_runs_of_dashes():
    assert keys.slug("fc_mnist", "cuda", "NVIDIA H100 80GB", None, "", "fp32") == "fc-mnist-cuda-nvidia-h100-80gb-fp32"
    assert keys.slug("--a//b--") == "a-b"


def test_configurations_compare_by_their_structural_fields():
    a = {"T": 25, "batch_size": 128, "seed": 1}
    b = {"seed": 2, "batch_size": 128, "T": 25}
    assert keys.canonical(a) != keys.canonical(b)
    # T and the seed change neither the network's shape nor the batch: the same measured step
    assert keys.structural_key(a) == keys.structural_key(b) == keys.structural_key({**a, "T": 50})
    assert keys.structural_key(a) != keys.structural_key({**a, "batch_size": 64})
    r = Result(task="fc_mnist", backend="stbp", config={"task": b})
    assert keys.config_key(r, drop={"seed"}) == keys.canonical({"T": 25, "batch_size": 128})


def test_a_setting_is_described_in_short_facts():
    cfg = {"T": 25, "batch_size": 128, "width": 0.5, "epochs": 1, "dataset": "fashion-mnist", "seed": 3,
           "surrogate_center": "zero", "lr": 5e-4, "eval_every_steps": 200}
    assert keys.describe_config(cfg, "training", {"train_samples": 55000, "val_samples": 5000}) == [
        "T = 25", "batch 128", "width × 0.5", "1 epoch", "Adam lr 0.0005", "evaluated every 200 steps", "Fashion-MNIST",
        "55,000 training / 5,000 validation samples", "seed 3", "surrogate centred on zero"]
    assert keys.describe_config({"T": 10, "neurons": 4096, "seed": 3, "steps": 5}, "measurement") == ["T = 10", "N = 4,096"]
    assert keys.describe_config({"limit_train": 64}, "training")[-1] == "first 64 training / all test images"
    assert keys.describe_config({"epochs": 3, "lr": 1e-3, "lr_gamma": 0.5, "lr_step_epochs": 1}, "training") == [
        "3 epochs", "Adam lr 0.001", "lr × 0.5 every 1 epoch"]
    assert keys.describe_config({"lr": 1e-3, "lr_gamma": 1.0, "lr_step_epochs": 1}, "training") == ["Adam lr 0.001"]
    # the DSRN's step after ten epochs, in a run of one: no step taken, none said
    assert keys.describe_config({"epochs": 1, "lr": 1e-3, "lr_gamma": 0.1, "lr_step_epochs": 10}, "training") == [
        "1 epoch", "Adam lr 0.001"]
    assert keys.describe_device("cuda", "H100") == "CUDA GPU · H100"
    assert keys.describe_device("cpu", None) == "CPU (model not recorded)"


def test_the_accuracy_target_is_the_records_own_or_its_datasets():
    assert keys.accuracy_target(Result(task="t", backend="b", extra={"accuracy_target": 0.9})) == 0.9
    cfg = {"dataset": "fashion-mnist", "accuracy_targets": [["mnist", 0.97], ["fashion-mnist", 0.85]]}
    assert keys.accuracy_target(Result(task="t", backend="b", config={"task": cfg})) == 0.85
    assert keys.accuracy_target(Result(task="t", backend="b", config={"task": {"accuracy_targets": [["synthetic", 1.0]]}})) == 1.0
    assert keys.accuracy_target(Result(task="t", backend="b", config={"task": {"accuracy_targets": [1, 2]}})) is None
    assert keys.accuracy_target(Result(task="t", backend="b")) is None
