"""tasks.provenance: the code fingerprint follows the code of tasks/ and backends/, nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.provenance import CODE_FOLDERS, code_fingerprint, project_commit, provenance, this_code
from tests.conftest import ROOT


def copy_of_the_code(tmp_path: Path) -> Path:
    for folder in CODE_FOLDERS:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("a note\n")
    return tmp_path


def test_the_fingerprint_changes_with_the_code_and_only_with_it(tmp_path):
    root = copy_of_the_code(tmp_path)
    before = code_fingerprint(root)
    assert before == code_fingerprint(ROOT) == this_code() and len(before) == 12
    (root / "docs" / "notes.md").write_text("another note\n")  # a docs change: the same edition
    (root / "tasks" / "profiles.toml").write_text((root / "tasks" / "profiles.toml").read_text() + "\n# a comment\n")
    (root / "tasks" / "__pycache__").mkdir(exist_ok=True)
    (root / "tasks" / "__pycache__" / "stale.py").write_text("x = 1\n")
    assert code_fingerprint(root) == before
    helper = root / "backends" / "stbp" / "neurons.py"
    helper.write_text(helper.read_text() + "\n")  # one byte of code: another edition
    assert code_fingerprint(root) != before
    helper.write_text(helper.read_text()[:-1])
    assert code_fingerprint(root) == before
    (root / "tasks" / "new_module.py").write_text("")  # a new file counts too
    assert code_fingerprint(root) != before


def test_a_record_carries_the_fingerprint_the_commit_and_the_machine():
    from tasks.machine import machine, this_machine

    carried = provenance()
    assert carried["code_fingerprint"] == this_code()
    assert carried["machine_fingerprint"] == this_machine() and carried["machine"] == machine()
    assert carried["spikebench_commit"] is None or len(carried["spikebench_commit"].removesuffix("-dirty")) == 40


def test_records_written_into_the_checkout_leave_its_commit_clean(tmp_path):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    root = copy_of_the_code(tmp_path)
    (root / "results" / "cpu").mkdir(parents=True)
    (root / "results" / "cpu" / "point.json").write_text("{}\n")

    def run(*args: str) -> None:
        subprocess.run([git, "-C", str(root), *args], check=True, capture_output=True)

    run("init", "-q")
    run("-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code and a record")
    clean = project_commit(root)
    assert clean is not None and len(clean) == 40
    (root / "results" / "cpu" / "point.json").write_text('{"status": "ok"}\n')  # the suite wrote a record
    (root / "results" / "cpu" / "another.json").write_text("{}\n")
    assert project_commit(root) == clean
    (root / "docs" / "notes.md").write_text("an edited note\n")  # a tracked file outside results/
    assert project_commit(root) == clean + "-dirty"
