"""The command line shared by every spikebench command: one-line errors, the
task and run argument groups, exit codes, and the translation of arguments
into a task spec's overrides, a run configuration and a child's argv.

``tasks.run``, ``tasks.measure``, ``tasks.sweep``, ``tasks.parity``,
``tasks.suite``, ``tasks.floor`` and ``reports.build`` all parse with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UsageError
from .result import check_writable
from .runner import RunConfig
from .specs import DATASETS, DEVICES, PRECISIONS, SURROGATE_CENTERS

EXIT_CODES = {"ok": 0, "error": 1, "unavailable": 2, "diverged": 3, "oom": 4}

# command-line flag -> task-spec field
OVERRIDES = {
    "T": "T",
    "epochs": "epochs",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "lr_gamma": "lr_gamma",
    "lr_step_epochs": "lr_step_epochs",
    "seed": "seed",
    "dataset": "dataset",
    "limit_train": "limit_train",
    "limit_test": "limit_test",
    "width": "width",
    "surrogate_center": "surrogate_center",
    "neurons": "neurons",
    "eval_every_steps": "eval_every_steps",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"spikebench: error: {message} (see --help)\n")
        raise SystemExit(2)


def add_task_arguments(p: argparse.ArgumentParser, several_T: bool = False) -> None:
    g = p.add_argument_group("task settings (defaults from the task spec)")
    if several_T:
        g.add_argument("--T", help="comma list of time steps, e.g. 1,2,4,8,16")
    else:
        g.add_argument("--T", type=int, help="time steps")
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--lr-gamma", type=float, metavar="G",
                   help="multiply the learning rate by G every --lr-step-epochs epochs")
    g.add_argument("--lr-step-epochs", type=int, metavar="N", help="epochs between the learning rate's steps")
    g.add_argument("--seed", type=int, help="seed of weights, data order, augmentation and Poisson draws")
    g.add_argument("--dataset", choices=DATASETS)
    g.add_argument("--limit-train", type=int, metavar="N", help="use the first N training images")
    g.add_argument("--limit-test", type=int, metavar="N", help="use the first N test (and validation) images")
    g.add_argument("--eval-every-steps", type=int, metavar="N",
                   help="evaluate every N optimiser steps instead of after each epoch")
    g.add_argument("--width", type=float, metavar="F", help="channel multiplier of dsrn_tdbn (for CPU tests)")
    g.add_argument("--surrogate-center", choices=SURROGATE_CENTERS, help="dsrn_tdbn: centre of the rectangular window")
    if several_T:
        g.add_argument("--neurons", help="lif_layer: comma list of layer widths N, e.g. 512,4096,16384")
    else:
        g.add_argument("--neurons", type=int, metavar="N", help="lif_layer: width N of the Linear(N, N) + LIF layer")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("run settings")
    r.add_argument("--precision", choices=PRECISIONS, default="fp32")
    r.add_argument("--device", choices=DEVICES, default="cpu")
    r.add_argument("--data-dir", help="where MNIST-format data sets are looked for first")
    r.add_argument("--no-download", action="store_true", help="never download data sets")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_backends(text: str) -> list[str]:
    import backends as registry  # names only: no framework is imported

    if text == "all":
        return registry.names()
    if text == "eager":  # all but the compiled variants, each of which compiles for tens of seconds first
        return [n for n in registry.names() if not registry.entry(n).compiles]
    # a name given twice is run once: two runs would write one file
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise UsageError(f"no backend given; valid backends: {', '.join(registry.names())}")
    for name in names:
        registry.entry(name)  # raises UsageError for unknown names
    return names


def check_output(path: str | Path, directory: bool = False) -> None:
    """--out must be writable before any work starts: a result is never lost at the end."""
    try:
        check_writable(path, directory)
    except UsageError as exc:
        raise UsageError(f"--out: {exc}") from None


def spec_overrides(args: argparse.Namespace) -> dict:
    return {field: getattr(args, flag) for flag, field in OVERRIDES.items() if getattr(args, flag) is not None}


def run_config(args: argparse.Namespace, backend: str) -> RunConfig:
    return RunConfig(
        backend=backend,
        device=args.device,
        precision=args.precision,
        data_dir=args.data_dir,
        allow_download=not args.no_download,
        progress=not args.no_progress,
        tensorboard=getattr(args, "tensorboard", None),
    )


def forwarded_arguments(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> list[str]:
    """The task and run settings of ``args`` as command-line arguments again."""
    argv = ["--precision", args.precision, "--device", args.device]
    for flag in OVERRIDES:
        value = None if flag in skip else getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.no_download:
        argv.append("--no-download")
    if args.no_progress:
        argv.append("--no-progress")
    return argv

