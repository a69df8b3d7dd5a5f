"""Section ``project``: a config's projected wall time, packed against unpacked."""

from __future__ import annotations

import copy
import functools
import heapq
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pandas  # noqa: F401  (imported lazily by memory_tables; a job's start-up pays it)
import torch
import yaml

from bench.common import ROOT, Table, read_config
from bench.sections.pack import Shape, job_seconds, pack_step, step_setup, timing_data
from curse_memory import families, model
from curse_memory.memory import memory_tables, student_memories
from curse_memory.model import StudentRNN
from curse_memory.perturbation import beta_grid, perturbation_sweep
from curse_memory.training import PACK_BYTES

# the stages the projection prices: the rules whose name starts with the prefix (one per
# group of families: train_students, train_students_fixed, ...) and the output file that
# names one student of the job (so a job's count of them is its number of students)
STAGES = {
    "train": ("train_students", "/model.pt"),
    "perturbation": ("evaluate_perturbation", "_draws.tsv"),
    "memory": ("estimate_student_memory", "_fit.tsv"),
}
PACKABLE = ("target", "param", "seed")  # train.pack_by's axes, in the path grammar's order
SNAKEFILE = ROOT / "workflow" / "Snakefile"
RULE_LINE = re.compile(r"^(?:local)?rule (\S+):$")
FIELD_LINE = re.compile(r"^    (\w+): (.*)$")


class Job(NamedTuple):
    """One job of a dry run: its rule, wildcards (in the rule's order), input and output
    files."""

    rule: str
    wildcards: dict
    inputs: tuple
    outputs: tuple


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of ``snakemake -n``'s output, in the order it prints them."""
    jobs, fields = [], None
    for line in [*text.splitlines(), ""]:
        rule = RULE_LINE.match(line)
        field = FIELD_LINE.match(line) if fields is not None else None
        if field:
            fields[field[1]] = field[2]
            continue
        if fields is not None:  # the end of a job's block
            wildcards = fields.get("wildcards", "")
            jobs.append(
                Job(
                    fields["rule"],
                    dict(kv.split("=", 1) for kv in wildcards.split(", ") if kv),
                    tuple(f for f in fields.get("input", "").split(", ") if f),
                    tuple(f for f in fields.get("output", "").split(", ") if f),
                )
            )
            fields = None
        if rule:
            fields = {"rule": rule[1]}
    return jobs


@functools.cache
def _dry_run(config_yaml: str) -> tuple[Job, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        configfile = Path(tmp) / "config.yaml"
        configfile.write_text(config_yaml)
        workdir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--snakefile"]
        cmd += [str(SNAKEFILE), "--configfile", str(configfile), "--directory", str(workdir)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    if done.returncode:
        raise RuntimeError(f"snakemake -n failed:\n{done.stdout}\n{done.stderr}")
    jobs = tuple(parse_dry_run(done.stdout))
    if not any(stage_of(job.rule) for job in jobs):  # e.g. a profile that sets quiet
        raise RuntimeError(f"snakemake -n listed no training job:\n{done.stdout[-2000:]}")
    return jobs


def workflow_jobs(config: dict, pack_by=None) -> list[Job]:
    """Every job of the workflow's dry run of ``config`` (an overlay of, or a whole,
    config; ``pack_by``, when given, replaces its train.pack_by) in a fresh directory."""
    config = copy.deepcopy(config)
    if pack_by is not None:
        config.setdefault("train", {})["pack_by"] = list(pack_by)
    return list(_dry_run(yaml.safe_dump(config)))


def stage_of(rule: str) -> str | None:
    """The priced stage a rule belongs to, None for the others (targets, aggregation and
    figures: the same packed or not)."""
    for stage, (prefix, _) in STAGES.items():
        if rule == prefix or rule.startswith(prefix + "_"):
            return stage
    return None


def students_of(job: Job) -> int:
    """How many students a job holds: its outputs that name one student each."""
    return sum(f.endswith(STAGES[stage_of(job.rule)][1]) for f in job.outputs)


def priced_jobs(jobs: list[Job]) -> tuple[dict, dict]:
    """The training, perturbation and memory jobs of a dry run, in topological order:
    (stage, wildcard values) -> Job, and -> the priced jobs it waits for (through other
    jobs too)."""
    producer = {f: job for job in jobs for f in job.outputs}
    key = lambda job: (stage_of(job.rule), tuple(job.wildcards.values()))

    @functools.cache
    def upstream(i: int) -> tuple:
        """The nearest priced jobs that jobs[i] waits for, in its inputs' order."""
        found = []
        for f in jobs[i].inputs:
            if f not in producer:
                continue
            dep = producer[f]
            more = [key(dep)] if stage_of(dep.rule) else upstream(index[id(dep)])
            found += [k for k in more if k not in found]
        return tuple(found)

    index = {id(job): i for i, job in enumerate(jobs)}
    priced = {key(job): job for job in jobs if stage_of(job.rule)}
    deps = {key(job): list(upstream(i)) for i, job in enumerate(jobs) if stage_of(job.rule)}
    order: dict = {}

    def visit(k) -> None:  # depth first: every job after the jobs it waits for
        if k not in order:
            for dep in deps[k]:
                visit(dep)
            order[k] = priced[k]

    for k in priced:
        visit(k)
    return order, {k: deps[k] for k in order}


def project_dag(config: dict, pack_by, seconds_of, startup: float = 0.0) -> tuple[dict, dict]:
    """The training, perturbation and memory jobs of a config's workflow, packed along
    ``pack_by``, as its dry run lists them, in topological order: job -> seconds and job ->
    the jobs it waits for; a job is (stage, its wildcard values). ``seconds_of(stage,
    wildcards, r)``: the seconds of a training or perturbation job of r students, start-up
    included; for memory, the work on one training job's r students without start-up (a
    memory job takes every width of its pack: ``startup`` + the sum over the training jobs
    it waits for)."""
    jobs, deps = priced_jobs(workflow_jobs(config, pack_by))
    seconds = {}
    for k, job in jobs.items():
        if k[0] == "memory":
            trains = [jobs[d] for d in deps[k] if d[0] == "train"]
            seconds[k] = startup + sum(
                seconds_of("memory", t.wildcards, students_of(t)) for t in trains
            )
        else:
            seconds[k] = seconds_of(k[0], job.wildcards, students_of(job))
    return seconds, deps


def critical_paths(seconds: dict, deps: dict) -> dict:
    """Each job's longest path to the end of the DAG, itself included (topological order)."""
    rank = dict.fromkeys(seconds, 0.0)
    for job in reversed(list(seconds)):
        rank[job] += seconds[job]
        for dep in deps[job]:
            rank[dep] = max(rank[dep], rank[job])
    return rank


def list_schedule(seconds: dict, deps: dict, cores: int) -> float:
    """Makespan of greedy list scheduling on ``cores``, one job per core, no preemption:
    a free core takes the ready job with the longest path to the end (ties: DAG order)."""
    rank, order = critical_paths(seconds, deps), {job: i for i, job in enumerate(seconds)}
    children, waiting = defaultdict(list), {job: len(deps[job]) for job in seconds}
    for job in seconds:
        for dep in deps[job]:
            children[dep].append(job)
    ready = [(-rank[j], order[j], j) for j in seconds if not waiting[j]]
    heapq.heapify(ready)
    running, now = [], 0.0  # heap of (end, order, job)
    while ready or running:
        while ready and len(running) < cores:
            _, i, job = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[job], i, job))
        now, _, job = heapq.heappop(running)
        for child in children[job]:
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(ready, (-rank[child], order[child], child))
    return now


def sweep_seconds(args, config: dict, student: StudentRNN) -> float:
    """A config's perturbation sweep of one student (every norm, all betas, its repeats and
    n_test), scaled linearly in copies x sequences from a sweep over the first
    ``--project-sweep-betas`` nonzero betas and ``--project-sweep-n`` test sequences."""
    p, n_test = config["perturbation"], config["data"]["n_test"]
    n, k = min(args.project_sweep_n, n_test), min(args.project_sweep_betas, p["n_betas"])
    x, y = (timing_data(config["data"]["T"], 1, n)[0][key] for key in ("x_test", "y_test"))
    sweep = functools.partial(perturbation_sweep, student, x, y, norm="inf")
    sweep([0.0], 1, generator=torch.Generator())  # warm-up: one pass
    start = time.perf_counter()
    sweep(beta_grid(p["beta_min"], p["beta_step"], k), p["repeats"], generator=torch.Generator())
    elapsed = time.perf_counter() - start
    copies = lambda n_betas: 1 + n_betas * p["repeats"]  # beta=0 is evaluated once
    return elapsed * len(p["norms"]) * n_test / n * copies(p["n_betas"]) / copies(k)


def memory_seconds(config: dict, students: list[StudentRNN]) -> float:
    """A memory job's work on its students as ``estimate_student_memory`` does it
    (``student_memories``: one float64 time loop over the config's Heaviside inputs and
    horizon per width), then each one's tail fit."""
    p, labels = config["memory"], {"subject": "bench", "kind": "student", "target": "bench"}
    start = time.perf_counter()
    t, memories = student_memories(students, p["horizon"], p["amplitudes"])
    for memory in memories:
        memory_tables(t, memory, labels, p["fit_from"])
    return time.perf_counter() - start


def measure_student(args, config: dict, shape: Shape, rs) -> dict:
    """Seconds per step at r=1 and at each r of ``rs`` (the workflow's PACK_BYTES); the
    perturbation sweep of the r=1 student so trained; the memory estimate of 1 and of r
    students."""
    train, datas = step_setup(config, config["data"]["T"], args.project_steps)
    pack_step(shape, 1, replace(train, steps=2), datas, PACK_BYTES)  # warm-up
    step, models = {}, {}
    for r in sorted(set(rs) | {1}):
        step[r], models[r] = pack_step(shape, r, train, datas, PACK_BYTES)
    return {
        "step": step,
        "perturbation": sweep_seconds(args, config, models[1][0]),
        "memory": {r: memory_seconds(config, pack) for r, pack in models.items()},
    }


def shape_of(wildcards: dict) -> tuple:
    """The measured shape of a job: family, structure, activation and width (the map f
    costs next to nothing: one parameterisation is timed)."""
    w = wildcards
    return (w.get("family", families.DEFAULT), w["structure"], w["activation"], int(w["width"]))


def project_times(args, config: dict, jobs: dict, startup: float, table: Table, name: str):
    """Measure every shape of a config's training jobs (``jobs``: the packed DAG's, from
    ``priced_jobs``), at r=1 and at their r; return ``seconds_of``."""
    s = config["students"]
    specs = s.get("families", [families.DEFAULT])  # the schema's default: rnn only
    dtype, specs = s.get("dtype", "float32"), {families.get(f).name: f for f in specs}
    rs = defaultdict(set)
    for (stage, _), job in jobs.items():
        if stage == "train":
            rs[shape_of(job.wildcards)].add(students_of(job))
    measured = {}
    for key in sorted(rs, key=lambda k: (list(specs).index(k[0]), *k[1:])):
        family, structure, activation, width = key
        axes = families.get(specs[family]).axes
        param = s["parameterisations"][0] if axes else model.NO_AXIS
        shape = Shape(name, structure, activation, width, dtype, param, specs[family])
        t = measured[key] = measure_student(args, config, shape, rs[key])
        steps = " ".join(f"step_r{r}_ms={1e3 * v:.3f}" for r, v in t["step"].items())
        memory = " ".join(f"memory_r{r}_s={v:.3f}" for r, v in t["memory"].items())
        table.note(
            "project-measure",
            f"config={name} family={family} structure={structure} act={activation} "
            f"m={width} dtype={dtype} {steps} sweep_s={t['perturbation']:.3f} {memory}",
        )

    def seconds_of(stage: str, wildcards: dict, r: int) -> float:
        t = measured[shape_of(wildcards)]
        if stage == "train":
            return job_seconds(startup, config["train"]["steps"], t["step"][r])
        if stage == "memory":
            return t["memory"][r]  # one training job's students: a memory job takes all widths
        return startup + r * t["perturbation"]

    return seconds_of


def bench_project(args, table: Table, startup: float) -> None:
    """Section 8: projected wall time of a config's grid, packed against unpacked; the jobs
    and their dependencies from the workflow's own dry run (``snakemake -n``)."""
    config, name = read_config(args.project_config), args.project_config.stem
    if args.project_pack_by is None:  # the config's own, else target and seed
        args.project_pack_by = config["train"].get("pack_by", ["seed", "target"])
    args.project_pack_by = [a for a in PACKABLE if a in args.project_pack_by]
    packed_jobs, _ = priced_jobs(workflow_jobs(config, args.project_pack_by))
    seconds_of = project_times(args, config, packed_jobs, startup, table, name)
    dags = [project_dag(config, by, seconds_of, startup) for by in (args.project_pack_by, ())]
    students = sum(students_of(j) for (stage, _), j in packed_jobs.items() if stage == "train")
    for cores in args.project_cores:
        packed, unpacked = (list_schedule(*dag, cores) / 3600 for dag in dags)
        table.note(
            "project",
            f"config={name} cores={cores} packed={packed:.4g} unpacked={unpacked:.4g} "
            f"ratio={unpacked / packed:.2f}x unit=h students={students} "
            f"pack_by={','.join(args.project_pack_by)} jobs_packed={len(dags[0][0])} "
            f"jobs_unpacked={len(dags[1][0])} startup_s={startup:.2f}",
        )
