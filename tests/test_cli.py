"""tasks/cli.py: the command line every command shares (one-line errors, the backends named,
--out checked first, arguments into overrides, a run configuration and a child's argv).
``python -m tasks.run`` as a user meets it: tests/test_run.py."""

from __future__ import annotations

import pytest

import backends
from tasks import cli
from tasks.errors import UsageError


def parser() -> cli.OneLineParser:
    p = cli.OneLineParser(prog="x")
    cli.add_task_arguments(p)
    cli.add_run_arguments(p)
    return p


def test_a_parse_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["--T", "many"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikebench: error: ") and err.endswith("(see --help)\n")


def test_backends_named_once_each_all_or_refused():
    assert cli.resolve_backends("all") == backends.names()
    assert cli.resolve_backends(" stbp, snntorch,stbp ") == ["stbp", "snntorch"]
    with pytest.raises(UsageError, match="no backend given"):
        cli.resolve_backends(" , ")
    with pytest.raises(UsageError, match="unknown backend 'tensorflow'"):
        cli.resolve_backends("stbp,tensorflow")


def test_out_is_checked_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="^--out: "):
        cli.check_output(tmp_path / "file", directory=True)
    cli.check_output(tmp_path / "new" / "r.json")  # a file that can be written: no error


def test_arguments_become_overrides_a_run_config_and_a_childs_argv_again():
    args = parser().parse_args(["--T", "5", "--batch-size", "8", "--surrogate-center", "zero", "--precision", "bf16",
                                "--data-dir", "/d", "--no-download", "--no-progress"])
    assert cli.spec_overrides(args) == {"T": 5, "batch_size": 8, "surrogate_center": "zero"}
    config = cli.run_config(args, "stbp")
    assert (config.backend, config.precision, config.device, config.data_dir) == ("stbp", "bf16", "cpu", "/d")
    assert not config.allow_download and not config.progress
    argv = cli.forwarded_arguments(args)
    assert argv == ["--precision", "bf16", "--device", "cpu", "--T", "5", "--batch-size", "8",
                    "--surrogate-center", "zero", "--data-dir", "/d", "--no-download", "--no-progress"]
    assert cli.spec_overrides(parser().parse_args(argv)) == cli.spec_overrides(args)  # the child reads the same
    assert "--T" not in cli.forwarded_arguments(args, skip=("T",))


def test_every_override_is_a_flag_of_the_task_arguments():
    flags = {a.dest for a in parser()._actions}
    assert set(cli.OVERRIDES) <= flags
    assert cli.EXIT_CODES["ok"] == 0 and len(set(cli.EXIT_CODES.values())) == len(cli.EXIT_CODES)


def test_the_evaluation_cadence_is_a_setting_a_profile_row_and_a_child_pass_on():
    from tasks.profiles import SETTINGS
    from tasks.specs import get_spec

    args = parser().parse_args(["--eval-every-steps", "50"])
    assert cli.spec_overrides(args) == {"eval_every_steps": 50}
    assert "--eval-every-steps" in cli.forwarded_arguments(args)
    assert get_spec("fc_mnist", **cli.spec_overrides(args)).eval_every_steps == 50
    assert "eval_every_steps" in SETTINGS
