"""tasks/progress.py: the one progress bar of every command, on stderr only."""

from __future__ import annotations

from tasks.progress import progress_bar


def test_no_bar_when_not_enabled(capfd):
    assert progress_bar(False, total=3) is None
    assert capfd.readouterr() == ("", "")


def test_the_bar_writes_to_stderr_and_never_to_stdout(capfd):
    bar = progress_bar(True, total=3, desc="training")
    bar.update(3)
    bar.close()
    out, err = capfd.readouterr()
    assert out == "" and "training" in err and "3/3" in err
