"""``--executor slurm``: each point one Slurm job, submitted through submitit.

Every submission is one job array per kind of point (timing points with
``--exclusive``: a node of their own; the rest with the profile's CPUs, GPUs
and memory), its time limit the points' estimate times the profile's margin.
A job runs the same child command as a local run and writes its record on the
shared filesystem under the results folder.

The job ids are kept under ``<out>/.slurm/`` (``jobs.json``; and, written just
before each ``sbatch``, the submission's points in order, so a suite killed
between ``sbatch`` and saving the ids still finds its array by name).  A suite
run again re-attaches to its queued and running jobs and never submits a point
whose job is alive; a job that ended without a record (cancelled, preempted,
out of time, lost with its node) is reported with Slurm's reason and submitted
again on the next run.  Ctrl-C leaves the jobs running; ``--cancel`` cancels
them.  The job states come from ``squeue``, how a job ended from ``scontrol``
(finished jobs stay known for ``MinJobAge``) or, where accounting is on, ``sacct``.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .child import file_stamp, start_child
from .errors import UsageError
from .orchestrate import ChildCommand, Run, is_done
from .profiles import ClusterResources
from .result import write_atomic

POLL_S = 2.0
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
         "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}


def require_slurm() -> None:
    """submitit importable and ``sbatch`` on PATH, else a one-line error."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UsageError("--executor slurm needs submitit: pip install -e '.[cluster]'") from None
    missing = [c for c in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(c) is None]
    if missing:
        raise UsageError(f"--executor slurm: no {', '.join(missing)} on PATH (run it where Slurm's commands are)")


@dataclass(frozen=True)
class JobState:
    state: str
    reason: str = ""
    node: str = ""


def _slurm(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def live_jobs() -> dict[str, JobState]:
    """This user's queued and running jobs (array tasks one by one): id -> state."""
    proc = _slurm("squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T|%r|%N")
    if proc.returncode != 0:
        raise UsageError(f"squeue failed: {_first_line(proc.stderr or proc.stdout)}")
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[1] in ALIVE:
            jobs[parts[0]] = JobState(parts[1], parts[2], parts[3])
    return jobs


def how_it_ended(job: str) -> str:
    """Slurm's account of a job that is no longer queued or running."""
    proc = _slurm("scontrol", "show", "job", "-o", job)
    if proc.returncode == 0 and "JobState=" in proc.stdout:
        fields = dict(f.split("=", 1) for f in proc.stdout.split() if "=" in f)
        reason = fields.get("Reason", "None")
        return (f"job {job} {fields.get('JobState', '?')}" + ("" if reason == "None" else f" ({reason})")
                + f", exit code {fields.get('ExitCode', '?')}")
    proc = _slurm("sacct", "-n", "-P", "-X", "-j", job, "-o", "State,ExitCode")
    if proc.returncode == 0 and proc.stdout.strip():
        state, _, code = proc.stdout.strip().splitlines()[0].partition("|")
        return f"job {job} {state}, exit code {code}"
    return f"job {job} ended; Slurm no longer knows how"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


class JobStore:
    """The folder's Slurm jobs: point key -> job id, the record's file stamp
    when it was submitted, and the submission it came in."""

    def __init__(self, out: Path):
        self.folder = out / ".slurm"  # hidden: the report reads every other *.json
        self.path = self.folder / "jobs.json"
        self.log = self.folder / "submitted.log"  # "JOB KEY" per line, every submission ever made
        self.submissions = self.folder / "submissions"
        self.name_prefix = "spikebench-" + hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]

    def load(self) -> dict[str, dict]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return {}

    def save(self, jobs: dict[str, dict]) -> None:
        write_atomic(self.path, json.dumps(jobs, indent=1, sort_keys=True) + "\n")

    def intend(self, keys: list[str], stamps: list) -> tuple[str, Path]:
        """Record a submission's points before ``sbatch``: its job name and file."""
        sid = uuid.uuid4().hex[:12]
        name = f"{self.name_prefix}-{sid}"
        path = self.submissions / f"{sid}.json"
        write_atomic(path, json.dumps({"name": name, "keys": keys, "stamps": stamps}) + "\n")
        return name, path

    def recover(self, jobs: dict[str, dict]) -> dict[str, dict]:
        """Submissions whose ids were never saved (a kill right after ``sbatch``):
        found again by their job name among the live jobs; the rest dropped."""
        if not self.submissions.is_dir():
            return jobs
        names = None
        for path in sorted(self.submissions.glob("*.json")):
            try:
                intent = json.loads(path.read_text())
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            if names is None:
                proc = _slurm("squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%j")
                names = [line.split("|", 1) for line in proc.stdout.splitlines() if "|" in line]
            for job, name in names:
                if name.strip() != intent["name"]:
                    continue
                base, _, index = job.partition("_")
                i = int(index) if index.isdigit() else 0
                if i < len(intent["keys"]):
                    jobs[intent["keys"][i]] = {"job": job, "stamp": intent["stamps"][i]}
            self.save(jobs)
            path.unlink(missing_ok=True)
        return jobs


def run_job(argv: list[str], path: str, log: str, cwd: str) -> int:
    """What each Slurm job runs (pickled by submitit): the point's child
    command, its threads set to the job's CPUs; the child's exit status."""
    os.chdir(cwd)
    env = dict(os.environ)
    cpus = env.get("SLURM_CPUS_PER_TASK")
    if cpus and not env.get("SPIKEBENCH_EXCLUSIVE"):
        from .executors import THREAD_VARIABLES

        env.update({name: cpus for name in THREAD_VARIABLES})
    with open(log, "w") as handle:
        handle.write(" ".join(argv) + f"\n# Slurm job {env.get('SLURM_JOB_ID')} on {os.uname().nodename}\n")
        handle.flush()
        return start_child(argv, Path(path), stdout=handle, stderr=subprocess.STDOUT, env=env).wait().returncode


class SlurmExecutor:
    name = "slurm"

    def __init__(self, out: Path, cluster: ClusterResources, sbatch: dict[str, str], poll_s: float = POLL_S):
        require_slurm()
        self.out, self.cluster, self.sbatch, self.poll_s = out, cluster, sbatch, poll_s
        self.store = JobStore(out)

    # -- what the suite asks besides running
    def cancel(self) -> int:
        jobs = self.store.recover(self.store.load())
        alive = live_jobs()
        ids = sorted({entry["job"] for entry in jobs.values() if entry["job"] in alive})
        if ids:
            proc = _slurm("scancel", *ids)
            if proc.returncode != 0:
                raise UsageError(f"scancel failed: {_first_line(proc.stderr)}")
        return len(ids)

    def _parameters(self, commands: list[ChildCommand], exclusive: bool, name: str) -> dict:
        minutes = self.cluster.minutes(max(c.point.estimate_s for c in commands))
        params: dict = {"job_name": name, "time": minutes, "additional_parameters": dict(self.sbatch)}
        if exclusive:  # the whole node: its cores and (--mem=0) all its memory
            params["exclusive"] = True
            params["mem"] = "0"
            params["setup"] = ["export SPIKEBENCH_EXCLUSIVE=1"]
        else:
            params["cpus_per_task"] = self.cluster.cpus_per_task
            params["mem"] = f"{self.cluster.mem_gb:g}G"
        if self.cluster.gpus_per_task:
            params["gpus_per_node"] = self.cluster.gpus_per_task
        return params

    def _submit(self, commands: list[ChildCommand], exclusive: bool, jobs: dict[str, dict]) -> str:
        import submitit

        stamps = [file_stamp(c.path) for c in commands]
        name, intent = self.store.intend([c.point.key for c in commands], stamps)
        executor = submitit.SlurmExecutor(folder=self.store.folder / "logs" / "%j")
        executor.update_parameters(**self._parameters(commands, exclusive, name))
        refused = None
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's error too: one line is ours
            try:
                with executor.batch():
                    submitted = [executor.submit(run_job, list(c.argv), str(c.path), str(c.log), os.getcwd())
                                 for c in commands]
            except Exception as exc:  # sbatch's own message: unknown partition, account, ...
                refused = exc
        if refused is not None:
            intent.unlink(missing_ok=True)
            raise UsageError(f"sbatch refused the jobs: {_first_line(str(refused))}")
        for command, job, stamp in zip(commands, submitted, stamps):
            jobs[command.point.key] = {"job": str(job.job_id), "stamp": stamp}
        self.store.save(jobs)
        intent.unlink(missing_ok=True)
        with open(self.store.log, "a") as handle:  # every submission, for the record
            handle.writelines(f"{jobs[c.point.key]['job']} {c.point.key}\n" for c in commands)
        first, last = jobs[commands[0].point.key]["job"], jobs[commands[-1].point.key]["job"]
        return f"{len(commands)} {'timing ' if exclusive else ''}point(s) as job{'s' if len(commands) > 1 else ''} " \
               f"{first}{'' if first == last else ' to ' + last}" + (" (exclusive)" if exclusive else "")

    def run(self, commands: list[ChildCommand], run: Run) -> None:
        jobs = self.store.recover(self.store.load())
        alive = live_jobs()
        watched: dict[str, ChildCommand] = {}
        fresh: list[ChildCommand] = []
        for c in commands:
            entry = jobs.get(c.point.key)
            if entry and entry["job"] in alive:
                watched[c.point.key] = c  # re-attached: never submitted twice
            elif entry and is_done(c.point, c.path):
                run.finished(c.point, None)  # its job finished since the caller looked
            else:
                fresh.append(c)
        for exclusive in (True, False):
            group = [c for c in fresh if (c.point.part == "timing") == exclusive]
            if group:
                run.progress.write(f"submitted {self._submit(group, exclusive, jobs)}")
                watched.update({c.point.key: c for c in group})
        attached = [k for k in watched if k not in {c.point.key for c in fresh}]
        if attached:
            run.progress.write(f"re-attached to the {len(attached)} queued or running job(s) of an earlier run")
        for key in watched:
            run.queued(watched[key].point)
        started: dict[str, float] = {}
        while watched:
            alive = live_jobs()
            for key, c in list(watched.items()):
                entry = jobs[key]
                state = alive.get(entry["job"])
                if state is not None:
                    if state.state == "RUNNING" and key not in started:
                        started[key] = time.perf_counter()
                        run.started(c.point, f"job {entry['job']} on {state.node}")
                    continue
                stamp = entry["stamp"]
                wrote = file_stamp(c.path) != (tuple(stamp) if stamp else None)
                failure = None if wrote else f"no record: {how_it_ended(entry['job'])}; see {c.log}"
                seconds = time.perf_counter() - started[key] if key in started else None
                run.finished(c.point, failure, seconds)
                del watched[key]
            if watched:
                time.sleep(self.poll_s)


def queue_view(out: Path) -> dict[str, str]:
    """For ``--list``: point key -> "queued (job ...)" / "running (job ... on node)"."""
    store = JobStore(out)
    jobs = store.load()
    if not jobs or shutil.which("squeue") is None:
        return {}
    try:
        alive = live_jobs()
    except UsageError:
        return {}
    view = {}
    for key, entry in jobs.items():
        state = alive.get(entry["job"])
        if state is None:
            continue
        if state.state == "RUNNING":
            view[key] = f"running (job {entry['job']} on {state.node})"
        else:
            view[key] = f"queued (job {entry['job']}, {state.state.lower()}"\
                        + (f": {state.reason})" if state.reason and state.reason != "None" else ")")
    return view
