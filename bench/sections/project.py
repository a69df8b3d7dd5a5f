"""Section ``project``: a config's projected wall time, packed against unpacked."""

from __future__ import annotations

import functools
import heapq
import math
import time
from collections import defaultdict
from dataclasses import replace
from itertools import product

import pandas  # noqa: F401  (imported lazily by memory_tables; a job's start-up pays it)
import torch

from bench.common import Table, read_config
from bench.sections.pack import Shape, job_seconds, pack_step, step_setup, timing_data
from curse_memory.memory import memory_tables, student_memories
from curse_memory.model import StudentRNN
from curse_memory.perturbation import beta_grid, perturbation_sweep
from curse_memory.training import PACK_BYTES

AXES = ("target", "structure", "param", "activation", "width", "seed")  # the path grammar's


def grid_values(config: dict) -> dict[str, list]:
    """Each axis of a config's student grid and its values (widths ascending)."""
    s = config["students"]
    return {
        "target": list(config["targets"]),
        "structure": s["structures"],
        "param": s["parameterisations"],
        "activation": s["activations"],
        "width": sorted(s["widths"]),
        "seed": config["seeds"],
    }


def project_dag(config: dict, pack_by, seconds_of, startup: float = 0.0) -> tuple[dict, dict]:
    """The training, perturbation and memory jobs of a config's grid, one per pack (the
    axes in ``pack_by`` packed together; a memory job takes every width of its pack, as
    the workflow's), in topological order: job -> seconds and job -> the jobs it waits
    for. ``seconds_of(stage, structure, activation, width, r)``: a job's seconds, start-up
    included, for train and perturbation; one width's memory work, without start-up,
    for memory (a memory job: ``startup`` + the sum over its widths)."""
    values = grid_values(config)
    outer = [a for a in AXES if a not in pack_by]
    r = math.prod(len(values[a]) for a in pack_by)
    widths, chain = values["width"], config["train"].get("width_monotone", True)
    seconds, deps, memory = {}, {}, {}
    for key in product(*(values[a] for a in outer)):
        pack = dict(zip(outer, key, strict=True))
        train, narrower = ("train", key), widths.index(pack["width"]) - 1
        prev = tuple(widths[narrower] if a == "width" else v for a, v in pack.items())
        for stage in ("train", "perturbation"):
            seconds[(stage, key)] = seconds_of(
                stage, pack["structure"], pack["activation"], pack["width"], r
            )
            deps[(stage, key)] = [train] if stage != "train" else []
        if chain and narrower >= 0:
            deps[train] = [("train", prev)]
        job = ("memory", tuple(v for a, v in pack.items() if a != "width"))
        work = seconds_of("memory", pack["structure"], pack["activation"], pack["width"], r)
        memory[job] = memory.get(job, startup) + work
        deps.setdefault(job, []).append(train)
    seconds |= memory  # after every training job they wait for
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


def measure_student(args, config: dict, shape: Shape, r: int) -> dict:
    """Seconds per step at r=1 and at r (the workflow's PACK_BYTES); the perturbation
    sweep of the r=1 student so trained; the memory estimate of 1 and of r students."""
    train, datas = step_setup(config, config["data"]["T"], args.project_steps)
    pack_step(shape, 1, replace(train, steps=2), datas, PACK_BYTES)  # warm-up
    step1, single = pack_step(shape, 1, train, datas, PACK_BYTES)
    step_r, pack = pack_step(shape, r, train, datas, PACK_BYTES) if r > 1 else (step1, single)
    return {
        "step": {1: step1, r: step_r},
        "perturbation": sweep_seconds(args, config, single[0]),
        "memory": {1: memory_seconds(config, single), r: memory_seconds(config, pack)},
    }


def project_times(args, config: dict, startup: float, table: Table, name: str):
    """Measure every structure x activation x width of a config; return ``seconds_of``."""
    values, dtype = grid_values(config), config["students"].get("dtype", "float32")
    r = math.prod(len(values[a]) for a in args.project_pack_by)
    measured = {}
    for key in product(values["structure"], values["activation"], values["width"]):
        shape = Shape(name, *key, dtype, values["param"][0])
        t = measured[key] = measure_student(args, config, shape, r)
        table.note(
            "project-measure",
            f"config={name} structure={key[0]} act={key[1]} m={key[2]} dtype={dtype} "
            f"step_r1_ms={1e3 * t['step'][1]:.3f} step_r{r}_ms={1e3 * t['step'][r]:.3f} "
            f"sweep_s={t['perturbation']:.3f} memory_r1_s={t['memory'][1]:.3f} "
            f"memory_r{r}_s={t['memory'][r]:.3f}",
        )

    def seconds_of(stage: str, structure: str, activation: str, width: int, r: int) -> float:
        t = measured[(structure, activation, width)]
        if stage == "train":
            return job_seconds(startup, config["train"]["steps"], t["step"][r])
        if stage == "memory":
            return t["memory"][r]  # one width's work: a memory job takes all widths
        return startup + r * t["perturbation"]

    return seconds_of


def bench_project(args, table: Table, startup: float) -> None:
    """Section 8: projected wall time of a config's grid, packed against unpacked."""
    config, name = read_config(args.project_config), args.project_config.stem
    if args.project_pack_by is None:  # the config's own, else target and seed
        args.project_pack_by = config["train"].get("pack_by", ["seed", "target"])
    args.project_pack_by = [a for a in AXES if a in args.project_pack_by]
    seconds_of = project_times(args, config, startup, table, name)
    dags = [project_dag(config, by, seconds_of, startup) for by in (args.project_pack_by, ())]
    students = math.prod(len(v) for v in grid_values(config).values())
    for cores in args.project_cores:
        packed, unpacked = (list_schedule(*dag, cores) / 3600 for dag in dags)
        table.note(
            "project",
            f"config={name} cores={cores} packed={packed:.4g} unpacked={unpacked:.4g} "
            f"ratio={unpacked / packed:.2f}x unit=h students={students} "
            f"pack_by={','.join(args.project_pack_by)} jobs_packed={len(dags[0][0])} "
            f"jobs_unpacked={len(dags[1][0])} startup_s={startup:.2f}",
        )
