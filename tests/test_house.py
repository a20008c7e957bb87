"""The tests mirror the code: every module of the harness (tasks/) and of the report
(reports/) has its tests in tests/test_<module>.py, so that a module's tests are found by
its name.  Where two packages have a module of the same name (tasks/nir.py and
reports/nir.py), tests/test_nir.py holds both."""

from __future__ import annotations

from tests.conftest import ROOT

PACKAGES = ("tasks", "reports")
# modules with nothing to test, and why
EXEMPT = {
    "__init__": "a package's docstring and version string",
}


def modules() -> list[str]:
    return sorted(f"{package}/{path.stem}" for package in PACKAGES for path in (ROOT / package).glob("*.py")
                  if path.stem not in EXEMPT)


def test_every_module_of_tasks_and_reports_has_a_test_file_named_after_it():
    missing = [m for m in modules() if not (ROOT / "tests" / f"test_{m.split('/')[1]}.py").is_file()]
    assert not missing, f"no tests/test_<module>.py for {missing}"


def test_the_check_sees_every_module():
    found = modules()
    assert "tasks/parity" in found and "reports/tables" in found and len(found) >= 40
