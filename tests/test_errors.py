"""tasks/errors.py: which errors reach the user as one line and exit status 2, and which
become a run's status instead."""

from __future__ import annotations

import pytest

from tasks import errors


@pytest.mark.parametrize("cls", [errors.UsageError, errors.DataError, errors.BackendUnavailable])
def test_what_the_user_can_fix_exits_with_status_2(cls):
    assert issubclass(cls, errors.SpikebenchError) and cls("why").exit_code == 2
    assert str(cls("no such task 'x'")) == "no such task 'x'"


@pytest.mark.parametrize("cls", [errors.DeviceUnavailable, errors.Diverged, errors.DeviceOutOfMemory])
def test_what_a_run_records_as_its_status_is_no_user_error(cls):
    assert not issubclass(cls, errors.SpikebenchError)


def test_diverged_says_where_and_keeps_the_step_and_the_loss():
    exc = errors.Diverged(12, float("nan"))
    assert str(exc) == "loss became nan at step 12"
    assert exc.step == 12 and exc.loss != exc.loss
