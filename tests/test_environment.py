"""reports.environment: the header's code state: one fingerprint is one edition, several are said."""

from __future__ import annotations

from pathlib import Path

from reports.environment import environment
from reports.groups import group_settings
from reports.load import Collection, Loaded
from tasks.runner import RunConfig, failed_result
from tasks.specs import get_spec


def record(fingerprint: str | None, commit: str, name: str) -> Loaded:
    r = failed_result(get_spec("synthetic", T=10, steps=3), RunConfig("stbp"), "ok", "")
    r.host = {"spikebench_commit": commit, **({"code_fingerprint": fingerprint} if fingerprint else {})}
    return Loaded(r, name)


def env_of(*records: Loaded):
    collection = Collection(root=Path("."), results=list(records))
    return environment(collection, group_settings(collection))


def test_one_fingerprint_over_two_commits_is_one_edition():
    env = env_of(record("aaaaaaaaaaaa", "1" * 40, "a"), record("aaaaaaaaaaaa", "2" * 40, "b"))
    assert env.fingerprints == ["aaaaaaaaaaaa"] and len(env.commits) == 2
    assert not any("states of the code" in w or "commits" in w for w in env.warnings)


def test_two_fingerprints_are_named_as_not_one_edition():
    env = env_of(record("aaaaaaaaaaaa", "1" * 40, "a"), record("bbbbbbbbbbbb", "1" * 40 + "-dirty", "b"))
    (warning,) = [w for w in env.warnings if "states of the code" in w]
    assert "aaaaaaaaaaaa, bbbbbbbbbbbb" in warning and "not one edition" in warning
    assert "(uncommitted changes)" in warning


def test_records_from_before_fingerprints_still_warn_of_several_commits():
    env = env_of(record(None, "1" * 40, "a"), record(None, "2" * 40, "b"))
    assert env.fingerprints == ["unrecorded"]
    assert any("2 different spikebench commits" in w for w in env.warnings)


def test_the_machine_is_shown_and_two_kinds_of_machine_are_named_as_not_one_edition():
    from tasks.machine import describe, fingerprint

    zen3 = {"cpu": "AMD EPYC", "cpu_family": "25", "model": "1", "isa": ["avx2"], "threads": 2, "gpus": []}
    zen4 = zen3 | {"model": "17", "isa": ["avx2", "avx512f"]}
    a, b = record("aaaaaaaaaaaa", "1" * 40, "a"), record("aaaaaaaaaaaa", "1" * 40, "b")
    for loaded, identity in ((a, zen3), (b, zen3)):
        loaded.result.host.update(machine_fingerprint=fingerprint(identity), machine=identity)
    env = env_of(a, b)
    assert env.machines == [(fingerprint(zen3), describe(zen3))] and "avx2; no GPU" in env.machines[0][1]
    assert not any("kinds of machine" in w for w in env.warnings)
    b.result.host.update(machine_fingerprint=fingerprint(zen4), machine=zen4)
    (warning,) = [w for w in env_of(a, b).warnings if "kinds of machine" in w]
    assert "2 different kinds of machine" in warning and "avx2 avx512f" in warning and "not one edition" in warning
    assert env_of(record("aaaaaaaaaaaa", "1" * 40, "c")).machines == [("unrecorded", "not recorded")]
