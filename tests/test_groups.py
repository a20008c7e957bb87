"""reports.groups: records into settings; timings of two machine kinds never share a table."""

from __future__ import annotations

from pathlib import Path

from reports.groups import group_settings
from reports.load import Collection, Loaded
from tasks.runner import RunConfig, failed_result
from tasks.specs import get_spec


def timed(cpu: str | None, hostname: str, backend: str = "stbp", job: str | None = None) -> Loaded:
    spec = get_spec("lif_layer", T=5, batch_size=2, neurons=16)
    r = failed_result(spec, RunConfig(backend), "ok", "", kind="measurement")
    r.device = {"type": "cpu", **({"name": cpu} if cpu else {})}
    r.host = {"hostname": hostname, "slurm_job_id": job}
    r.set_metric("forward_backward_time", 0.01)
    return Loaded(r, f"{hostname}-{backend}-{cpu}.json")


def test_timings_from_two_cpu_models_land_in_two_settings_even_from_one_cluster_run():
    records = [timed("AMD EPYC 7B13", "node1", job="7_0"), timed("Intel Xeon Platinum 8480", "node2", job="7_1"),
               timed("AMD EPYC 7B13", "node3", "snntorch", job="7_2")]
    settings = group_settings(Collection(root=Path("."), results=records))
    by_machine = {s.dname: s for s in settings}
    assert set(by_machine) == {"AMD EPYC 7B13", "Intel Xeon Platinum 8480"}
    for name, setting in by_machine.items():
        (sweep,) = setting.sweeps
        assert {p.result.device["name"] for p in sweep.points.values()} == {name}
    assert set(by_machine["AMD EPYC 7B13"].sweeps[0].backends) == {"stbp", "snntorch"}


def test_a_record_without_a_device_name_joins_its_own_hosts_machine_only():
    records = [timed("AMD EPYC 7B13", "node1"), timed("Intel Xeon Platinum 8480", "node2", "snntorch"),
               timed(None, "node2", "norse")]
    settings = group_settings(Collection(root=Path("."), results=records))
    intel = next(s for s in settings if s.dname == "Intel Xeon Platinum 8480")
    assert set(intel.sweeps[0].backends) == {"snntorch", "norse"}
