"""tasks/child.py: a child's result is only a file it wrote itself (real child processes)."""

from __future__ import annotations

import sys

from tasks.child import file_stamp, run_child, start_child


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_file_the_child_writes_counts(tmp_path):
    out = tmp_path / "r.json"
    outcome = run_child(python(f"open({str(out)!r}, 'w').write('{{}}')"), out)
    assert outcome.returncode == 0 and outcome.wrote and out.read_text() == "{}"


def test_an_earlier_runs_file_at_the_path_never_counts(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("an earlier run's")
    outcome = run_child(python("import sys; sys.exit(3)"), out)
    assert outcome.returncode == 3 and not outcome.wrote
    assert out.read_text() == "an earlier run's"


def test_a_child_that_dies_before_writing_leaves_nothing_and_its_temporaries_go(tmp_path):
    out = tmp_path / "r.json"
    stale = tmp_path / ".r.json.123.tmp"  # a killed write's temporary
    other = tmp_path / ".other.json.1.tmp"  # another file's: not ours to remove
    stale.write_text("half")
    other.write_text("half")
    killed_mid_write = f"open({str(tmp_path / '.r.json.456.tmp')!r}, 'w').write('half'); import os; os._exit(9)"
    outcome = run_child(python(killed_mid_write), out)
    assert outcome.returncode == 9 and not outcome.wrote and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.1.tmp"]


def test_a_started_child_is_polled_until_it_ends(tmp_path):
    out = tmp_path / "r.json"
    child = start_child(python(f"import time; time.sleep(0.3); open({str(out)!r}, 'w').write('x')"), out)
    assert child.poll() is None
    outcome = child.wait()
    assert outcome.wrote and child.poll() == outcome


def test_file_stamp_is_none_for_a_missing_file(tmp_path):
    assert file_stamp(tmp_path / "none") is None
    (tmp_path / "f").write_text("abc")
    assert file_stamp(tmp_path / "f")[1] == 3
