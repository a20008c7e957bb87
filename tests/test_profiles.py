"""tasks/profiles.py: the shipped profiles, what each covers, and a bad profile named in one line."""

from __future__ import annotations

import pytest

import backends
from tasks.errors import UsageError
from tasks.profiles import PARTS, get_profile, is_compiled_variant, load_profiles, points
from tasks.specs import get_spec


def test_the_shipped_profiles_are_valid_and_every_point_has_its_own_file():
    shipped = load_profiles()
    assert {"smoke", "cpu", "gpu", "full"} <= set(shipped)
    names = backends.names()
    for profile in shipped.values():
        pts = points(profile, profile.backend_names(names), list(PARTS))
        keys = [p.key for p in pts]
        assert len(keys) == len(set(keys)), profile.name
        # full: the publications' recipes, training runs only (the gpu profile measures the same networks)
        assert {p.part for p in pts} == ({"train"} if profile.name == "full" else set(PARTS)), profile.name


def test_the_cpu_profile_covers_what_the_comparison_needs_within_its_budget():
    cpu = get_profile("cpu")
    names = cpu.backend_names(backends.installable_names(cpu.device))
    # every backend that runs on a CPU (not the CUDA-graph variants)
    assert names == [n for n in backends.names() if not backends.entry(n).unavailable_reason
                     and "cpu" in backends.entry(n).devices]
    assert not [n for n in names if n.endswith(":cudagraphs")]
    pts = points(cpu, names, list(PARTS))
    trained = {p.task for p in pts if p.part == "train"}
    timed = {p.task for p in pts if p.part == "timing"}
    assert trained == {"synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn"}
    assert timed == trained | {"lif_layer"}
    # accuracy is a mean over seeds; the DSRN has one on a CPU: three do not fit the budget (docs/tasks.md)
    assert all(len(r.seeds) >= 3 for r in cpu.train if r.task != "dsrn_tdbn")
    assert next(r for r in cpu.train if r.task == "dsrn_tdbn").seeds == (0,)
    fc = next(r for r in cpu.train if r.task == "fc_mnist")
    assert "limit_train" not in fc.settings  # the full data set
    assert next(r for r in cpu.train if r.task == "synthetic").settings == {}  # the full recipe
    eager_Ts = {r.task: r.Ts for r in cpu.timing if r.variants == "eager"}
    assert len(eager_Ts["fc_mnist"]) >= 3 and len(eager_Ts["dsrn_tdbn"]) >= 3  # memory versus T
    assert next(r for r in cpu.timing if r.task == "lif_layer").neurons == (512, 2048)
    # the whole profile within five hours on today's sixteen backends (ten, and six compiled variants,
    # which run fewer points than the budget a backend allows)
    total_s = sum(p.estimate_s for p in pts)
    assert len(names) == 16 and total_s <= 300 * 60
    assert total_s <= cpu.budget_minutes(len(names)) * 60


FASHION_MNIST_TRAIN = 60_000  # training images of Fashion-MNIST (its idx files)


def evaluations(spec) -> int:
    """How many times the runner evaluates a training run of ``spec`` (tasks/runner.py's cadence:
    every ``eval_every_steps`` steps and at an epoch's end where that is not one of them; else each epoch)."""
    if spec.steps is not None:
        per_epoch = spec.steps
    else:
        images = FASHION_MNIST_TRAIN - getattr(spec, "validation_size", 0)
        per_epoch = min(images, spec.limit_train or images) // spec.batch_size
    every = spec.eval_every_steps
    if not every:
        return spec.epochs
    return sum(1 for step in range(1, per_epoch * spec.epochs + 1)
               if step % every == 0 or (step % per_epoch == 0 and step % every))


def test_every_cpu_training_curve_has_at_least_five_points():
    cpu = get_profile("cpu")
    for row in cpu.train:
        spec = get_spec(row.task, **cpu.task_settings(row.task, row.settings))
        assert evaluations(spec) >= 5, row.task


def estimate_by_backend(pts) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for p in pts:
        seconds[p.backend] = seconds.get(p.backend, 0.0) + p.estimate_s
    return seconds


@pytest.mark.parametrize("name", list(load_profiles()))
def test_every_backend_s_points_fit_the_profile_s_budget_per_backend(name):
    profile = get_profile(name)
    seconds = estimate_by_backend(points(profile, backends.installable_names(profile.device), list(PARTS)))
    assert max(seconds.values()) <= profile.budget_minutes_per_backend * 60, seconds


def test_a_profile_grows_with_the_registry_without_an_edited_cap(register_backend):
    cpu = get_profile("cpu")
    today = cpu.backend_names(backends.installable_names(cpu.device))
    before = points(cpu, today, list(PARTS))
    extra = [f"newcomer{i}" for i in range(6)]
    for name in extra:  # registered as a new framework would be, with a fake backend behind it
        register_backend(name, "tests.fake_backends:NaNAfterThreeSteps")
    names = cpu.backend_names(backends.installable_names(cpu.device))
    assert names == today + extra
    pts = points(cpu, names, list(PARTS))
    seconds = estimate_by_backend(pts)
    # each newcomer gets the same points as every other eager backend (the compiled variants their
    # own), within the same budget a backend
    assert set(seconds) == set(names)
    assert len({v for b, v in seconds.items() if not is_compiled_variant(b)}) == 1
    assert max(seconds.values()) <= cpu.budget_minutes_per_backend * 60
    assert sum(seconds.values()) <= cpu.budget_minutes(len(names)) * 60
    assert cpu.budget_minutes(len(names)) > cpu.budget_minutes(len(today))  # the budget grew, no cap was edited
    # today's backends keep their points (the committed records stay done)
    assert [p for p in pts if p.backend in today] == [p for p in before]


def test_seeds_are_the_same_for_every_backend():
    cpu = get_profile("cpu")
    pts = [p for p in points(cpu, backends.names(), ["train"])]
    by_task: dict[str, dict[str, set[int]]] = {}
    for p in pts:
        seed = int(p.args[p.args.index("--seed") + 1])
        by_task.setdefault(p.task, {}).setdefault(p.backend, set()).add(seed)
    for task, seeds in by_task.items():
        assert len({frozenset(s) for s in seeds.values()}) == 1, task


@pytest.mark.parametrize("text, needle", [
    ("[p]\nbogus = 1\n", "unknown key"),
    ("[p]\nbudget_minutes_per_backend = 'a lot'\n", "must be a non-negative number"),
    ("[p]\n[[p.train]]\ntask = 'nope'\n", "unknown task"),
    ("[p]\n[[p.train]]\ntask = 'lif_layer'\n", "measured, not trained"),
    ("[p]\n[[p.train]]\ntask = 'fc_mnist'\nsettings = { T = -1 }\n", "T must be a positive integer"),
    ("[p]\n[[p.train]]\ntask = 'fc_mnist'\nsettings = { colour = 1 }\n", "unknown key"),
    ("[p]\n[[p.timing]]\ntask = 'fc_mnist'\nneurons = [8]\n", "no setting 'neurons'"),
    ("[p]\n[[p.timing]]\ntask = 'fc_mnist'\nrepeats = 3\n", "at least 10"),
    ("[p]\nprecisions = ['fp16']\n", "precisions"),
    ("[p\n", "cannot read"),
    ("[p]\n[[p.train]]\ntask = 'fc_mnist'\nrecipe = 'mine'\n", "the only recipe"),
    ("[p]\n[[p.train]]\ntask = 'fc_mnist'\nrecipe = 'published'\nsettings = { T = 3 }\n", "without settings"),
    ("[p]\n[[p.timing]]\ntask = 'fc_mnist'\nvariants = 'fused'\n", "variants must be one of all, eager, compiled"),
    ("[p]\n[p.parity]\ntasks = ['fc_mnist']\ncompiled_tasks = ['lif_layer']\n", "compiled_tasks must be among"),
    ("[p]\n[p.parity]\ntasks = 'all'\ncompiled_tasks = ['nope']\n", "unknown task 'nope'"),
])
def test_a_bad_profile_is_named_in_one_line(tmp_path, text, needle):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=needle):
        get_profile("p", path)


def _without_compiled(pts):
    return [p for p in pts if not is_compiled_variant(p.backend)]


def _eager_of(variant: str) -> str:
    return variant.rsplit(":", 1)[0]  # stbp:compile, stbp:cudagraphs -> stbp


def _as_eager(p) -> tuple:
    """A compiled variant's point as its eager backend's would read."""
    eager = _eager_of(p.backend)
    return (p.part, p.key.replace(p.backend.replace(":", "-"), eager), p.task, p.estimate_s,
            tuple(eager if a == p.backend else a for a in p.args))


def test_a_row_of_eager_variants_leaves_the_compiled_ones_out_and_one_of_compiled_variants_the_rest(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[p]\n[[p.timing]]\ntask = 'lif_layer'\n"
                    "[[p.timing]]\ntask = 'fc_mnist'\nvariants = 'eager'\n"
                    "[[p.timing]]\ntask = 'synthetic'\nvariants = 'compiled'\n"
                    "[[p.train]]\ntask = 'synthetic'\nvariants = 'eager'\n"
                    "[p.parity]\ntasks = ['fc_mnist', 'synthetic']\ncompiled_tasks = ['fc_mnist']\n")
    profile = get_profile("p", path)
    pts = points(profile, ["stbp", "stbp:compile"], list(PARTS))
    got = {(p.part, p.task, p.backend) for p in pts if p.part != "parity"}
    assert got == {("timing", "lif_layer", "stbp"), ("timing", "lif_layer", "stbp:compile"),
                   ("timing", "fc_mnist", "stbp"), ("timing", "synthetic", "stbp:compile"),
                   ("train", "synthetic", "stbp")}
    parity = {p.backend: p.args[p.args.index("--task") + 1] for p in pts if p.part == "parity"}
    assert parity == {"stbp": "fc_mnist,synthetic", "stbp:compile": "fc_mnist"}


def test_smoke_runs_the_compiled_variants_on_its_smallest_points_only():
    smoke = get_profile("smoke")
    names = smoke.backend_names(backends.installable_names(smoke.device))
    compiled = [n for n in names if is_compiled_variant(n)]
    assert len(compiled) >= 6
    pts = points(smoke, names, list(PARTS))
    eager_counts = {len([p for p in pts if p.backend == n]) for n in names if n not in compiled}
    assert len(eager_counts) == 1  # every eager backend keeps every point
    for name in compiled:
        mine = [p for p in pts if p.backend == name]
        assert sorted((p.part, p.task) for p in mine) == [("parity", None), ("timing", "fc_mnist"),
                                                         ("train", "fc_mnist")], name
        # fc_mnist's smallest parity case, and a timing point and a training run of the same shapes
        timing = next(p for p in mine if p.part == "timing")
        train = next(p for p in mine if p.part == "train")
        assert timing.args[timing.args.index("--T") + 1] == train.args[train.args.index("--T") + 1] == "4"
        assert (timing.args[timing.args.index("--batch-size") + 1]
                == train.args[train.args.index("--batch-size") + 1] == "16")
        assert train.args[train.args.index("--seed") + 1] == "0"
        parity = next(p for p in mine if p.part == "parity")
        assert parity.args[parity.args.index("--task") + 1] == "fc_mnist"
    # the compiled variants cost the smoke profile 3 points each, not every point of a backend
    assert len(pts) - len(_without_compiled(pts)) == 3 * len(compiled)


@pytest.mark.parametrize("name, kinds", [("cpu", {"compile"}), ("gpu", {"compile", "cudagraphs"})])
def test_the_comparison_profiles_compile_the_short_loops_beside_the_same_eager_points(name, kinds):
    profile = get_profile(name)
    names = profile.backend_names(backends.installable_names(profile.device))
    pts = points(profile, names, list(PARTS))
    compiled = [n for n in names if is_compiled_variant(n)]
    assert {n.split(":")[1] for n in compiled} == kinds
    for variant in compiled:
        mine = [p for p in pts if p.backend == variant]
        timed = sorted({(p.task, int(p.args[p.args.index("--T") + 1])) for p in mine if p.part == "timing"})  # each precision
        assert timed == [("dsrn_tdbn", 1), ("dsrn_tdbn", 2), ("fc_mnist", 10), ("fc_mnist", 25)], variant
        assert sorted((p.task, p.args[p.args.index("--seed") + 1]) for p in mine if p.part == "train") == \
            [("fc_mnist", s) for s in ("0", "1", "2")], variant
        # parity, the referee of every row, on the tasks of its rows
        parity = next(p for p in mine if p.part == "parity")
        assert set(parity.args[parity.args.index("--task") + 1].split(",")) == {t for t, _ in timed}, variant
        # each beside its eager backend's point of the same task, T and settings: compared side by side
        eager = {_as_eager(p)[1:3] + _as_eager(p)[4:] for p in pts if p.backend == _eager_of(variant)}
        for p in mine:
            if p.part != "parity":
                assert _as_eager(p)[1:3] + _as_eager(p)[4:] in eager, p.key


def test_a_point_an_eager_row_and_a_compiled_row_both_list_is_one_point_in_asv(monkeypatch):
    import importlib

    from benchmarks import config

    monkeypatch.setenv("SPIKEBENCH_ASV_PROFILE", "cpu")
    try:
        cpu = importlib.reload(config)
        both = cpu.STEP_POINTS[("fc_mnist", 25)].backends
        assert "stbp" in both and "stbp:compile" in both
        assert "stbp:compile" not in cpu.STEP_POINTS[("fc_mnist", 50)].backends
        assert "stbp" in cpu.STEP_POINTS[("fc_mnist", 50)].backends
    finally:
        monkeypatch.delenv("SPIKEBENCH_ASV_PROFILE")
        importlib.reload(config)
