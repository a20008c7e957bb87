"""tasks/taskspec.py: what every task's spec has -- overrides and their checks, the
neuron's constants by kind, accuracy targets, a publication's recipe as settings."""

from __future__ import annotations

import pytest

from tasks.errors import UsageError
from tasks.taskspec import DATASETS, LR_MAX, Published, accuracy_target_in
from tasks.workloads import TASKS, get_spec


def test_overrides_replace_fields_ignore_none_and_refuse_unknown_names():
    spec = get_spec("synthetic")
    assert spec.with_overrides(T=7, lr=None).T == 7
    assert spec.with_overrides(lr=None) == spec
    with pytest.raises(UsageError, match="has no setting 'width'"):
        spec.with_overrides(width=2)


@pytest.mark.parametrize("override, needle", [
    ({"T": 0}, "T must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"lr": LR_MAX * 2}, f"lr must be at most {LR_MAX:g}"),
    ({"steps": -1}, "steps must be a positive integer"),
    ({"seed": -3}, "seed must be a non-negative integer"),
])
def test_a_bad_override_is_refused_by_name(override, needle):
    with pytest.raises(UsageError, match=needle):
        get_spec("synthetic").with_overrides(**override)


def test_an_image_task_refuses_an_unknown_data_set():
    assert get_spec("fc_mnist", dataset=DATASETS[1]).dataset == DATASETS[1]
    with pytest.raises(UsageError, match="unknown dataset 'cifar'"):
        get_spec("fc_mnist", dataset="cifar")


def test_the_neuron_constants_follow_the_kind_in_its_documented_order():
    for name in TASKS:
        spec = get_spec(name)
        params = spec.neuron_params()
        expected = {"soft": ("a_mem", "v_th", "surrogate_alpha", "surrogate_width"),
                    "subtractive": ("beta", "v_th", "surrogate_alpha"),
                    "hard": ("tau", "v_th", "surrogate_alpha"),
                    "stbp": ("tau", "v_th", "surrogate_a")}[spec.neuron]
        assert params[:len(expected)] == tuple(getattr(spec, f) for f in expected), name
    dsrn = get_spec("dsrn_tdbn")
    offset = 0.0 if dsrn.surrogate_center == "threshold" else -dsrn.v_th
    assert dsrn.neuron_params()[-1] == offset


def test_a_target_is_looked_up_by_data_set_and_a_task_without_one_keys_synthetic():
    targets = (("mnist", 0.9), ("synthetic", 0.8))
    assert accuracy_target_in(targets, "mnist") == 0.9
    assert accuracy_target_in(targets, None) == 0.8
    assert accuracy_target_in(targets, "fashion-mnist") is None


def test_a_publication_s_recipe_names_the_data_set_only_where_the_task_has_one():
    recipe = Published("mnist", 0.5, "a paper", overrides=(("epochs", 3),))
    assert recipe.settings("fc_mnist") == {"dataset": "mnist", "epochs": 3}
    assert recipe.settings("synthetic") == {"epochs": 3}
