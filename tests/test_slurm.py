"""The workflow on a real SLURM cluster through workflow/profiles/slurm.

A single-node cluster (munged, slurmctld, slurmd) is started on localhost for the session by
tests/slurm/start-local-slurm.sh and always stopped again, by PID, by stop-local-slurm.sh.
The tiny config then runs through SLURM in a copy of the repository: every job goes through
sbatch, the tables equal a plain local run's, and a job forced to fail is reported as a failed
SLURM job whose rerun redoes only what had not finished.

Needs root (it installs the Debian SLURM packages if missing and runs the daemons). Set
SKIP_SLURM_TESTS=1 to skip; anything else that keeps the cluster from starting is a failure.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_copy import copy_workflow

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPTS = ROOT / "tests" / "slurm"
PROFILE = "workflow/profiles/slurm"
TINY = "tests/config/tiny.yaml"
TIMINGS = {"training.tsv": ["wall_s"]}  # columns that measure time, not results
FAIL_SCRIPT = "workflow/scripts/estimate_student_memory.py"
DAEMONS = ("munged", "slurmctld", "slurmd")
RUN_TIMEOUT = 1500  # s for one snakemake invocation (the tiny config takes a few minutes)
START_TIMEOUT = 1800  # s for start-local-slurm.sh, which may have to apt-get install first
STOP_TIMEOUT = 120  # s for stop-local-slurm.sh
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
FAILED = re.compile(r"Error in rule (\w+):\s*\n\s*message: SLURM-job '(\d+)' failed")


# ----------------------------------------------------------------------------- cluster
@dataclass
class Cluster:
    state_dir: Path
    env: dict[str, str]  # SLURM_CONF and the srun shim on PATH: what a client needs
    partition: str
    node_mem_mb: int
    cpus: int
    pids: dict[str, int]

    def run(self, *cmd: str) -> str:
        proc = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=60, check=True
        )
        return proc.stdout

    def jobs(self, name: str) -> dict[str, tuple[str, str]]:
        """{job id: (state, comment)} of every job named ``name`` (finished ones included:
        the test cluster keeps them for an hour). The plugin names every job after its run
        ID and puts the rule into the comment."""
        out = self.run("squeue", "-h", "-t", "all", "-n", name, "-o", "%i|%T|%k")
        rows = (line.split("|", 2) for line in out.splitlines() if line.strip())
        return {job_id: (state, comment) for job_id, state, comment in rows}


def _free_ports(n: int) -> list[int]:
    """Ports nobody listens on, so a real SLURM on this host (or a second test session)
    cannot clash with the test cluster."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a container's PID 1 may never reap the
    daemons, which detach from us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _sigterm_as_interrupt(signum, frame):
    # pytest tears fixtures down on KeyboardInterrupt but not when killed by SIGTERM (a CI
    # timeout): turn SIGTERM into an interrupt so the daemons are still stopped.
    raise KeyboardInterrupt(f"signal {signum}")


def _stop(state_dir: Path, env: dict[str, str], pids: dict[str, int]) -> None:
    proc = subprocess.run(
        [str(SCRIPTS / "stop-local-slurm.sh"), str(state_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    # Belt and braces: whatever the script left running of what we started gets SIGKILL.
    left = {name: pid for name, pid in pids.items() if _running(pid)}
    for pid in left.values():
        os.kill(pid, signal.SIGKILL)
    if left or proc.returncode != 0:
        raise AssertionError(
            f"stop-local-slurm.sh exited {proc.returncode}, left running: {left} "
            f"(killed)\n{proc.stderr[-3000:]}"
        )
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.environ.get("SKIP_SLURM_TESTS") == "1":
        pytest.skip("SKIP_SLURM_TESTS=1")
    if os.geteuid() != 0:
        pytest.fail(
            "the SLURM tests install SLURM and run its daemons, which needs root "
            "(set SKIP_SLURM_TESTS=1 to skip them)"
        )
    # Not under pytest's tmp_path: its parents are private to root, and munged (running as
    # the munge user) has to reach its socket and key in here.
    state_dir = Path(tempfile.mkdtemp(prefix="slurm-test-", dir="/tmp"))
    ctld_port, slurmd_port = _free_ports(2)
    env = os.environ | {
        "SLURM_TEST_DIR": str(state_dir),
        "SLURM_TEST_CTLD_PORT": str(ctld_port),
        "SLURM_TEST_SLURMD_PORT": str(slurmd_port),
        "SLURM_TEST_PARTITION": "debug",
    }
    pids: dict[str, int] = {}
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        try:
            proc = subprocess.run(
                [str(SCRIPTS / "start-local-slurm.sh"), str(state_dir)],
                env=env,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"start-local-slurm.sh did not finish within {START_TIMEOUT} s")
        for name in DAEMONS:  # recorded even after a failed start, for the finalizer
            pid_file = state_dir / f"{name}.pid"
            if pid_file.is_file() and pid_file.read_text().strip().isdigit():
                pids[name] = int(pid_file.read_text())
        if proc.returncode != 0:
            pytest.fail(
                "could not start the local SLURM cluster (are the Debian packages slurmctld, "
                "slurmd, slurm-client and munge installable?); set SKIP_SLURM_TESTS=1 to skip."
                f"\n{proc.stderr[-4000:]}"
            )
        assert set(pids) == set(DAEMONS), f"missing PID files: {pids}"
        env |= {
            "SLURM_CONF": str(state_dir / "slurm.conf"),
            "PATH": f"{state_dir / 'bin'}:{os.environ['PATH']}:/usr/sbin:/sbin",
        }
        probe = Cluster(state_dir, env, "debug", 0, 0, pids)
        node = probe.run("sinfo", "-h", "-N", "-o", "%P|%m|%c").split()[0].split("|")
        yield Cluster(state_dir, env, node[0].rstrip("*"), int(node[1]), int(node[2]), pids)
    finally:
        try:
            _stop(state_dir, env, pids)
        finally:
            signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- running
def snakemake(cwd: Path, *args: str, env: dict[str, str], log_name: str) -> tuple[int, str]:
    """Run snakemake in ``cwd``, bounded; returns its exit code and its output."""
    log = cwd / log_name
    env = env | {"CURSE_MEMORY_DEVICE": "cpu"}  # the same device locally and in the jobs
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "snakemake"), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGINT makes snakemake cancel its SLURM jobs and exit; it sits out SIGTERM.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            pytest.fail(f"snakemake {args} ran past {RUN_TIMEOUT} s:\n{tail(log.read_text())}")
    return code, log.read_text()


def tail(text: str, n: int = 6000) -> str:
    return text[-n:]


def job_logs(work: Path, n: int = 3) -> str:
    """Tails of the SLURM logs the plugin kept (those of failed jobs): the Snakemake log
    only says that a SLURM job failed, these say why."""
    logs = sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"), key=os.path.getmtime)[-n:]
    return "".join(f"\n--- {p.relative_to(work)}\n{tail(p.read_text(), 2000)}" for p in logs)


def slurm_args(cluster: Cluster) -> list[str]:
    """The profile plus the test-only overrides: this cluster's partition, requests that fit
    its one node, squeue for job states (there is no slurmdbd, so sacct never reports a
    finished job), a short first status check, and no account (there is no sacctmgr)."""
    profile = yaml.safe_load((ROOT / PROFILE / "config.yaml").read_text())

    def fit(resource: str, value):
        if resource == "slurm_partition":
            return cluster.partition
        if resource == "mem_mb":  # leave room for one job per core
            return min(int(value), cluster.node_mem_mb // max(cluster.cpus, 1))
        return value

    defaults = [f"{k}={fit(k, v)}" for k, v in profile["default-resources"].items()]
    per_rule = [
        f"{rule}:{k}={fit(k, v)}"
        for rule, resources in profile["set-resources"].items()
        for k, v in resources.items()
        if k != "gpu"  # the test node has none
    ]
    return [
        "--profile",
        PROFILE,
        "--configfile",
        TINY,
        "--default-resources",
        *defaults,
        "--set-resources",
        *per_rule,
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-no-account",
    ]


def failing(source: str) -> str:
    """``source`` with ``raise SystemExit(1)`` at the top: after the docstring and any
    __future__ import, which must stay first."""
    line = 0
    for i, node in enumerate(ast.parse(source).body):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            break
        line = node.end_lineno
    lines = source.splitlines(keepends=True)
    return "".join([*lines[:line], "raise SystemExit(1)\n", *lines[line:]])


def job_stats(log: str) -> Counter:
    """The "Job stats" table Snakemake prints before running: jobs per rule."""
    table = log.split("Job stats:", 1)[1].split("\ntotal", 1)[0]
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)})


def started_rules(log: str) -> Counter:
    """Rules of the jobs this run started (local jobs print as "localrule")."""
    return Counter(re.findall(r"^(?:local)?rule (\w+):$", log, re.MULTILINE))


def submitted(log: str) -> list[str]:
    return SUBMITTED.findall(log)


def run_id(log: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", log)
    assert match, f"no SLURM run ID in the log:\n{tail(log)}"
    return match[1]


def assert_tables_equal(tables: Path, reference: Path) -> None:
    expected = sorted(p.name for p in reference.glob("*.tsv"))
    assert expected, f"the local run wrote no tables under {reference}"
    assert sorted(p.name for p in tables.glob("*.tsv")) == expected
    for name in expected:
        if name in TIMINGS:  # compared as text, timing columns dropped
            ours, theirs = (
                pd.read_csv(d / name, sep="\t", dtype=str, keep_default_na=False).drop(
                    columns=TIMINGS[name]
                )
                for d in (tables, reference)
            )
            pd.testing.assert_frame_equal(ours, theirs, obj=name)
        else:
            assert (tables / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.fixture(scope="session")
def local_tables(tmp_path_factory) -> Path:
    """The tiny config run the plain way, on this machine: the reference tables."""
    work = copy_workflow(tmp_path_factory.mktemp("local-run"))
    code, log = snakemake(
        work, "--configfile", TINY, "--cores", "2", env=dict(os.environ), log_name="local.log"
    )
    assert code == 0, f"the local run failed:\n{tail(log)}"
    return work / "results" / "tables"


# ----------------------------------------------------------------------------- tests
def test_profile_declares_executor_resources_and_status_command():
    text = (ROOT / PROFILE / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    assert profile["executor"] == "slurm"
    assert isinstance(profile["jobs"], int) and profile["jobs"] > 0
    for key in ("slurm_partition", "mem_mb", "runtime", "cpus_per_task"):
        assert key in profile["default-resources"], key
    for rule in ("train_students", "evaluate_perturbation", "train_students_fixed"):
        assert {"runtime", "mem_mb"} <= set(profile["set-resources"][rule]), rule
    assert profile["slurm-status-command"] in {"sacct", "squeue"}
    assert re.search(r"^\s*#\s*gpu: 1\s*$", text, re.MULTILINE), "GPU example missing"


def test_tiny_config_runs_through_slurm_with_local_tables(
    slurm_cluster, local_tables, tmp_path_factory
):
    work = copy_workflow(tmp_path_factory.mktemp("slurm-run"))
    start = time.perf_counter()
    code, log = snakemake(
        work, *slurm_args(slurm_cluster), env=slurm_cluster.env, log_name="slurm.log"
    )
    print(f"tiny config through SLURM: {time.perf_counter() - start:.0f} s")
    assert code == 0, f"the SLURM run failed:\n{tail(log)}{job_logs(work)}"

    # Every job that was not local went through sbatch, and SLURM ran it to completion.
    ids = submitted(log)
    print(f"SLURM job ids: {' '.join(ids)}")
    remote = re.findall(r"^rule (\w+):$", log, re.MULTILINE)  # not "localrule"
    assert len(ids) == len(set(ids)) == len(remote) > 0
    jobs = slurm_cluster.jobs(run_id(log))
    assert set(jobs) == set(ids), f"squeue knows {sorted(jobs)}, the log {sorted(ids)}"
    assert {state for state, _ in jobs.values()} == {"COMPLETED"}, jobs
    for rule in ("synthesize_target", "train_students", "evaluate_perturbation"):
        n = sum(comment.startswith(f"rule_{rule}") for _, comment in jobs.values())
        assert n == job_stats(log)[rule] > 0, (rule, n)

    assert_tables_equal(work / "results" / "tables", local_tables)


def test_failed_slurm_job_is_reported_and_rerun_redoes_only_unfinished_jobs(
    slurm_cluster, local_tables, tmp_path_factory
):
    work = copy_workflow(tmp_path_factory.mktemp("slurm-fail"))
    args = slurm_args(slurm_cluster)
    script = work / FAIL_SCRIPT
    original = script.read_bytes()
    script.write_text(failing(original.decode()))

    code, log = snakemake(work, *args, env=slurm_cluster.env, log_name="fail.log")
    assert code != 0, f"the run with a failing script succeeded:\n{tail(log)}"
    failed = FAILED.findall(log)
    ids = submitted(log)
    print(f"failing run, SLURM job ids: {' '.join(ids)}; failed: {failed}")
    assert failed, f"no failed SLURM job reported:\n{tail(log)}"
    assert {rule for rule, _ in failed} == {"estimate_student_memory"}
    jobs = slurm_cluster.jobs(run_id(log))
    for _, job_id in failed:
        assert job_id in ids and jobs[job_id][0] == "FAILED", (job_id, jobs.get(job_id))
    total = sum(job_stats(log).values())
    finished = len(re.findall(r"^Finished jobid: ", log, re.MULTILINE))
    assert 0 < finished < total
    assert started_rules(log)["train_students"] == job_stats(log)["train_students"] > 0

    # Restored byte for byte, the script is the one of the recorded code again: the rerun
    # must redo exactly the jobs that had not finished, and no training.
    script.write_bytes(original)
    code, log2 = snakemake(work, *args, env=slurm_cluster.env, log_name="rerun.log")
    print(f"rerun, SLURM job ids: {' '.join(submitted(log2))}")
    assert code == 0, f"the rerun failed:\n{tail(log2)}{job_logs(work)}"
    rerun = started_rules(log2)
    assert sum(job_stats(log2).values()) == sum(rerun.values()) == total - finished, rerun
    for rule in ("synthesize_target", "train_students", "evaluate_perturbation"):
        assert rerun[rule] == 0, f"{rule} ran again: {rerun}"
    assert rerun["estimate_student_memory"] == job_stats(log)["estimate_student_memory"]

    assert_tables_equal(work / "results" / "tables", local_tables)
