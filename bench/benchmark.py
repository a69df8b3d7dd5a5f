"""Speed benchmark of the shared module, measured side by side with a naive baseline.

Run as ``PYTHONPATH=workflow/scripts python bench/benchmark.py`` (``make bench``).
Every measurement is printed as one machine-readable line,

    <measurement> key=value ... ours=<ms> ms baseline=<ms> ms ratio=<x>x

(medians over repeats; ``ratio`` = baseline / ours) and written to ``--out`` as a TSV
with the columns measurement, setting, ours_ms, baseline_ms, ratio. Lines starting with
``check`` report the equivalence checks run before timing; a failed check makes the
script exit with status 1 after writing the table.

Sections:

1. ``train_step``: forward + backward + AdamW step on one batch. Ours is ``StudentRNN``
   (orthogonal structure A = P diag(f(w)) P^T, float32, default settings; for the linear
   activation both the convolution path ``fast_linear=True`` and the loop). The baseline
   is written here after the reference implementation (radarFudan/Curse-of-memory,
   ``SimpleRNN`` with its linear encoder and decoder): the input projection U x + b for
   the whole sequence, then per step a slice ``z[:, i:i+1, :]`` of it, A applied as three
   operations (h @ P, * f(w), @ P^T), the states appended to a list and ``torch.cat``-ed,
   the readout on the concatenated states; float64.
2. ``sweep``: a perturbation sweep of a briefly trained student, ``batched=True``
   against the same draws one by one (``batched=False``); and, on the first few betas,
   against the baseline evaluating the same draws one at a time in float64 (the
   reference's way). The two modes alternate beta by beta, so both see the same load.
3. ``scaling``: time per training step as T doubles and as m doubles, and the fitted
   exponents (slope of log time against log T or log m), ours and the baseline's.
4. ``rss``: the peak RSS of a training job at m=64, run in a child process.
5. ``e2e``: the summed job seconds, the peak memory of the m=64 training jobs and the
   wall clock of the last Snakemake run, from its benchmark files and logs.
6. ``pack``: packed training (``train_pack``, r students as one batched model) against
   one student per job, r in ``--pack-r`` (1, 4, 12, 48), all r of one student shape
   timed in turn within every repeat. Shapes: the default config's (diagonal, its
   activations, widths and dtype) and the paper config's tanh students in float64.
   Measured: the start-up of a job's Python process (median of 3 fresh interpreters
   importing torch, pandas, numpy and scipy.stats, once per run; ``--startup-s`` gives
   it instead) and the seconds per step of ``train_pack`` without early stopping, from
   the packs' own wall clocks (set-up, steps and validation passes; not the final
   evaluation), over ``--pack-steps`` steps, on ``make_target`` data (1,024 training
   sequences; the config's validation rate, n_val sequences every eval_every steps, as
   one batch every eval_every*batch/n_val steps). Modelled: a job of S steps (``--job-steps``,
   default the default config's budget) takes startup + S x step(r), so a ``pack`` line's
   ours = (startup + S step(r)) / (r S), its baseline = (startup + S step(1)) / S, per
   student and step. Every r is timed as one pack (max_bytes = r x batch x m x itemsize,
   the hidden states of one step: 4 bytes a value in float32, 8 in float64) and, when the
   workflow's default ``PACK_BYTES`` splits it (``packs=`` > 1), also with that.
   ``pack-step`` lines give the same without start-up: step(r) / r against step(1).
7. ``gpu`` (with CUDA only; else one ``gpu skipped`` line): the packed step time per
   student on the GPU for r in ``--gpu-r`` (1, 12, 48, 192), one pack, same shapes and
   settings as ``pack``, against one student (r=1) on the GPU; no start-up.
8. ``bptt``: one forward + backward pass of a pack of r diagonal students (the default
   config's nonlinear activations and widths, float32, batch 128, r in ``--bptt-r``, each
   copy on its own batch, as in packed training), ours (``student_forward``: the
   hand-written backward pass of ``DiagonalRecurrence``) against autograd through the
   same Euler loop, written here (one small readout product per step, as ours). Checked
   first in float64: equal loss and gradients.
9. ``tanh``: the same forward + backward pass of a float32 tanh pack as ``bptt``, with
   tanh computed as 2 sigmoid(2u) - 1 (what the workflow does in float32 on the CPU:
   ``model.sigmoid_tanh``) against ``torch.tanh``; checked first: the outputs agree to
   1e-5 of their scale, and the sigmoid form is within 3e-7 of float64 tanh.
10. ``project``: the projected wall time of a config's grid (``--project-config``,
   default config/paper.yaml) on ``--project-cores`` (2 and 16), packed (``pack_by``:
   ``--project-pack-by``, else the config's train.pack_by, else target and seed, so r =
   targets x seeds students per job) against one student per job. Measured, for every
   structure x activation x width of the config (its dtype, its first parameterisation:
   the map f costs next to nothing): the seconds per step at r=1 and at r, as in
   ``pack`` over ``--project-steps`` steps, r with the workflow's default PACK_BYTES
   (wide packs run as sub-packs in turn); one ``perturbation_sweep`` of the r=1 student
   so trained, over beta=0 and the first ``--project-sweep-betas`` nonzero betas of the
   config's grid, its repeats and ``--project-sweep-n`` test sequences, then scaled
   linearly in evaluated copies x sequences to the config's full grid, n_test and number
   of norms; the memory estimate (as ``estimate_student_memory``: float64 time loop over
   the config's Heaviside inputs and full horizon, all students of the job in one pass,
   then each tail fit) of the r=1 student and of the r students. Modelled: a training
   job takes startup + steps x step(r), with the config's whole step budget (early
   stopping and width-monotone targets ignored: an upper bound); a perturbation job
   startup + r x the sweep; a memory job (every width of a pack, as in the workflow)
   startup + the measured memory times of its students. Dependencies: each width's
   training waits for the next narrower width's (width monotonicity), perturbation and
   memory wait for their training; targets, aggregation and figures (the same either
   way) are left out. The DAG runs through a
   greedy list scheduler on P cores, one job per core: a free core takes the ready job
   with the longest path to the end. Hours in ``project`` lines; the measured figures in
   ``project-measure`` lines.

The machine may be shared: ratios are measured side by side, and ``--clock cpu`` times
this process's CPU time instead of the elapsed time (not in ``pack``, ``gpu`` and
``project``, which time wall seconds as a job pays them).
"""

from __future__ import annotations

import argparse
import csv
import functools
import heapq
import io
import math
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from itertools import product
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import numpy as np
import pandas  # noqa: F401  (imported lazily by memory_tables; a job's start-up pays it)
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from curse_memory import kernels, model
from curse_memory.memory import memory_tables, student_memories
from curse_memory.model import (
    ACTIVATIONS,
    DTYPES,
    PARAMETERISATIONS,
    StudentConfig,
    StudentRNN,
    recurrence,
    retyped,
    stack_students,
    student_forward,
)
from curse_memory.perturbation import (
    batched_mse,
    beta_grid,
    draw_perturbations,
    perturbation_sweep,
)
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import (
    PACK_BYTES,
    TrainConfig,
    evaluate,
    mse,
    train_pack,
    train_student,
)

SECTIONS = (
    "train",
    "sweep",
    "scaling",
    "rss",
    "e2e",
    "pack",
    "gpu",
    "bptt",
    "tanh",
    "kernel",
    "project",
)
ROOT = Path(__file__).resolve().parents[1]  # the repository
CHECK_RTOL = 1e-6  # the loss of ours and of the baseline, both in float64
RSS_TARGET_MB = 1024.0  # peak RSS target of a training job at m=64
CLOCK = time.perf_counter  # --clock cpu: time.process_time (this process's CPU time)


# ---------------------------------------------------------------------------- baseline
class NaiveRNN(nn.Module):
    """The reference implementation's approach, float64 (see the module docstring)."""

    def __init__(self, student: StudentRNN, device: torch.device, evaluation: bool = False):
        super().__init__()
        cfg = student.config
        if cfg.structure != "orthogonal" or cfg.d_out != 1:
            raise ValueError("the baseline covers the orthogonal structure with d_out=1 only")
        self.cfg = cfg
        maps = PARAMETERISATIONS[cfg.parameterisation]
        self.f = maps.evaluate if evaluation else maps.train  # evaluation: perturbed models
        self.act = ACTIVATIONS[cfg.activation]
        for name, value in student.raw_params().items():
            value = value.detach().to(device, torch.float64).clone()
            self.register_parameter(name, nn.Parameter(value))

    def forward(self, x: Tensor) -> Tensor:
        z = F.linear(x, self.U, self.b)  # encoder: (b, t, m)
        a = self.f(self.w, self.cfg.eps)
        h = torch.zeros(1, 1, self.w.shape[0], dtype=z.dtype, device=z.device)
        hidden = []
        for i in range(z.shape[1]):
            Ah = ((h @ self.P) * a) @ self.P.T
            h = h + self.cfg.dt * self.act(z[:, i : i + 1, :] - Ah)
            hidden.append(h)
        return F.linear(torch.cat(hidden, dim=1), self.c, self.c0)  # decoder


# ---------------------------------------------------------------------------- helpers
class Table:
    """Collects the measurement rows and prints each one as it comes."""

    def __init__(self):
        self.rows: list[dict] = []
        self.failed: list[str] = []

    def add(self, measurement: str, setting: str, ours: float, baseline: float | None) -> None:
        ratio = baseline / ours if baseline is not None and ours > 0 else math.nan
        line = f"{measurement} {setting} ours={ours:.3f} ms"
        if baseline is not None:
            line += f" baseline={baseline:.3f} ms ratio={ratio:.1f}x"
        print(line, flush=True)
        self.rows.append(
            {
                "measurement": measurement,
                "setting": setting,
                "ours_ms": f"{ours:.4f}",
                "baseline_ms": "" if baseline is None else f"{baseline:.4f}",
                "ratio": "" if baseline is None else f"{ratio:.3f}",
            }
        )

    def note(self, measurement: str, setting: str) -> None:
        """A row without timings (exponents, end-to-end figures, missing inputs)."""
        print(f"{measurement} {setting}", flush=True)
        row = {"measurement": measurement, "setting": setting}
        self.rows.append(row | {"ours_ms": "", "baseline_ms": "", "ratio": ""})

    def check(self, setting: str, ok: bool) -> None:
        print(f"check {setting} {'ok' if ok else 'FAILED'}", flush=True)
        if not ok:
            self.failed.append(setting)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            fields = ["measurement", "setting", "ours_ms", "baseline_ms", "ratio"]
            writer = csv.DictWriter(fh, fieldnames=fields, delimiter="\t")
            writer.writeheader()
            writer.writerows(self.rows)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Milliseconds of one call of fn."""
    sync(device)
    start = CLOCK()
    fn()
    sync(device)
    return 1e3 * (CLOCK() - start)


def side_by_side(fns: list, repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Median milliseconds of each function, timed in turn within every repeat."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            ts.append(timed(fn, device))
    return [statistics.median(ts) for ts in times]


def train_step_fn(model: nn.Module, x: Tensor, y: Tensor):
    """One training step (forward, MSE, backward, AdamW) as a closure."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = mse(model(x), y)
        loss.backward()
        opt.step()

    return step


def make_student(m: int, activation: str, seed: int, **overrides) -> StudentRNN:
    cfg = StudentConfig(width=m, structure="orthogonal", activation=activation, **overrides)
    return StudentRNN(cfg, generator=torch.Generator().manual_seed(seed))


def loss_and_grads(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, dict[str, Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = mse(model(x), y)
    loss.backward()
    return float(loss.detach()), {k: v.grad.detach().clone() for k, v in model.named_parameters()}


def equivalent(ours: nn.Module, baseline: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Relative differences of the loss and of the gradients (max over tensors)."""
    loss_o, grad_o = loss_and_grads(ours, x, y)
    loss_b, grad_b = loss_and_grads(baseline, x, y)
    rel_loss = abs(loss_o - loss_b) / max(abs(loss_b), 1e-300)
    rel_grad = max(
        float((grad_o[k] - grad_b[k]).norm() / grad_b[k].norm().clamp_min(1e-300)) for k in grad_b
    )
    return rel_loss, rel_grad


def batch(n: int, T: int, seed: int, device: torch.device, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, 1, generator=gen, dtype=torch.float64)
    y = torch.cumsum(x, dim=1) / torch.arange(1, T + 1, dtype=torch.float64)[:, None].sqrt()
    return x.to(device, dtype), y.to(device, dtype)


# ---------------------------------------------------------------------------- sections
PATHS = {  # line label -> (activation, fast_linear)
    "tanh": ("tanh", False),
    "linear-conv": ("linear", True),
    "linear-loop": ("linear", False),
}


def bench_train_steps(args, table: Table, device: torch.device) -> None:
    """Section 1: ours against the baseline, with the equivalence check first."""
    x32, y32 = batch(args.batch, args.T, 0, device, torch.float32)
    x64, y64 = x32.double(), y32.double()
    for m in args.widths:
        for activation in ("tanh", "linear"):
            student = make_student(m, activation, seed=m).to(device)
            baseline = NaiveRNN(student, device)
            paths = [p for p, (act, _) in PATHS.items() if act == activation]
            models = {}
            for path in paths:
                fast = PATHS[path][1]
                models[path] = make_student(m, activation, seed=m, fast_linear=fast).to(device)
                models[path].load_state_dict(student.state_dict())
                rel_loss, rel_grad = equivalent(retyped(models[path]), baseline, x64, y64)
                table.check(
                    f"train_step path={path} m={m} device={device.type} "
                    f"loss_rel={rel_loss:.2e} grad_rel={rel_grad:.2e} tol={CHECK_RTOL:g}",
                    rel_loss <= CHECK_RTOL and rel_grad <= CHECK_RTOL,
                )
            fns = [train_step_fn(models[p], x32, y32) for p in paths]
            fns.append(train_step_fn(baseline, x64, y64))
            times = side_by_side(fns, args.repeats, args.warmup, device)
            for path, ours in zip(paths, times[:-1], strict=True):
                setting = (
                    f"act={activation} path={path} m={m} T={args.T} B={args.batch} "
                    f"device={device.type}"
                )
                table.add("train_step", setting, ours, times[-1])


def trained_student(m: int, activation: str, data: dict, steps: int) -> StudentRNN:
    """A student after a short training run (a realistic parameter point, not converged)."""
    student = make_student(m, activation, seed=100 + m)
    cfg = TrainConfig(steps=steps, batch_size=128, eval_every=max(1, steps // 2))
    gen = torch.Generator().manual_seed(m)
    student, _, _ = train_student(student, data, cfg, gen, log=io.StringIO())
    return student


def max_relative(a: np.ndarray, b: np.ndarray, cap: float = math.inf) -> float:
    """Largest |a - b| / |b| over the entries where both are finite and below ``cap``."""
    both = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < cap) & (np.abs(b) < cap)
    if not both.any():
        return 0.0
    return float((np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-300)).max())


def sweep_errors(student: StudentRNN, data: dict, beta: float, draws: int, seed: int, batched):
    """(milliseconds, the draws' errors) of ``perturbation_sweep`` at one beta.

    ``batched`` is True or False (the module's two modes) or "reference": the same draws
    evaluated one at a time by the float64 baseline, as the reference does it.
    """
    gen = torch.Generator().manual_seed(seed)
    x, y = data["x_test"], data["y_test"]
    start = CLOCK()
    if batched == "reference":
        errors = reference_errors(student, x, y, beta, draws, gen)
    else:
        rows = perturbation_sweep(student, x, y, [beta], draws, "inf", gen, batched=batched)
        errors = rows[0]["errors"]
    return 1e3 * (CLOCK() - start), errors


@torch.no_grad()
def reference_errors(student: StudentRNN, x: Tensor, y: Tensor, beta, draws, gen) -> list:
    params = {k: v.detach() for k, v in student.raw_params().items()}
    naive = NaiveRNN(student, torch.device("cpu"), evaluation=True)
    x, y = x.double(), y.double()
    delta = draw_perturbations(params, beta, draws, "inf", gen) if beta else None
    errors = []
    for i in range(draws if beta else 1):
        for name, value in params.items():
            moved = value + delta[name][i] if beta else value
            getattr(naive, name).copy_(moved.double())
        error = float(((naive(x) - y) ** 2).mean())
        errors.append(error if math.isfinite(error) else math.inf)
    return errors


def sweep_pair(student, data, betas, draws: int, modes) -> tuple[list[float], list[np.ndarray]]:
    """Total milliseconds and all errors of two modes over the betas, interleaved beta by
    beta (alternating which goes first) so that both see the same machine load."""
    times, errors = [0.0, 0.0], [[], []]
    for i, beta in enumerate(betas):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for j in order:
            elapsed, errs = sweep_errors(student, data, beta, draws, 1000 + i, modes[j])
            times[j] += elapsed
            errors[j].extend(errs)
    return times, [np.array(e) for e in errors]


def bench_sweep(args, table: Table) -> None:
    """Section 2: batched draws against a loop over the same draws; and against the
    baseline evaluating the same draws one by one (fewer betas: it is slow)."""
    spec = TargetSpec(kind="linear", kernel="pol", kernel_params={"s": 0.1, "p": 1.1}, T=args.T)
    data = make_target(spec, n_train=512, n_val=128, n_test=args.sweep_n, seed=0)
    for m in args.sweep_widths:
        for activation in ("tanh", "linear"):
            student = trained_student(m, activation, data, args.sweep_train_steps)
            path = "conv" if activation == "linear" else "loop"
            betas = beta_grid()[: args.sweep_betas]
            times, (e_batched, e_seq) = sweep_pair(
                student, data, betas, args.sweep_draws, (True, False)
            )
            same_inf = bool((np.isfinite(e_batched) == np.isfinite(e_seq)).all())
            rel = max_relative(e_batched, e_seq)
            table.check(
                f"sweep act={activation} m={m} batched_vs_sequential_rel={rel:.2e} tol=1e-4 "
                f"same_divergence={same_inf}",
                same_inf and rel <= 1e-4,
            )
            grid = "full" if len(betas) == len(beta_grid()) else "reduced"
            common = f"draws={args.sweep_draws} n_test={args.sweep_n} T={args.T}"
            table.add(
                "sweep",
                f"act={activation} path={path} m={m} vs=sequential betas={len(betas)} "
                f"grid={grid} {common} passes={len(e_seq)}",
                *times,
            )
            if not args.ref_sweep_betas:
                continue
            betas = beta_grid()[: args.ref_sweep_betas]
            times, (e_batched, e_ref) = sweep_pair(
                student, data, betas, args.sweep_draws, (True, "reference")
            )
            # float32 against float64: compare the errors of the models that stay bounded
            rel = max_relative(e_batched, e_ref, cap=1e3 * float(data["y_var"]))
            table.check(
                f"sweep_reference act={activation} m={m} float32_vs_float64_rel={rel:.2e} tol=1e-3",
                rel <= 1e-3,
            )
            table.add(
                "sweep",
                f"act={activation} path={path} m={m} vs=reference_float64_one_by_one "
                f"betas={len(betas)} grid=reduced {common} passes={len(e_ref)}",
                *times,
            )


def slope(xs: list[float], ts: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def bench_scaling(args, table: Table, device: torch.device) -> None:
    """Section 3: training-step time against T (m fixed) and against m (T fixed), tanh."""
    for vary, grid in (("T", args.scaling_T), ("m", args.scaling_m)):
        ours_t, base_t = [], []
        for value in grid:
            T = value if vary == "T" else args.T
            m = value if vary == "m" else args.scaling_fixed_m
            x32, y32 = batch(args.batch, T, 1, device, torch.float32)
            student = make_student(m, "tanh", seed=m).to(device)
            baseline = NaiveRNN(student, device)
            fns = [
                train_step_fn(student, x32, y32),
                train_step_fn(baseline, x32.double(), y32.double()),
            ]
            ours, base = side_by_side(fns, args.scaling_repeats, 1, device)
            ours_t.append(ours)
            base_t.append(base)
            setting = f"act=tanh vary={vary} m={m} T={T} B={args.batch} device={device.type}"
            table.add("scaling", setting, ours, base)
        fixed = f"m={args.scaling_fixed_m}" if vary == "T" else f"T={args.T}"
        grid_s = ",".join(map(str, grid))
        table.note(
            "scaling_exponent",
            f"act=tanh vary={vary} {fixed} {vary}={grid_s} ours={slope(grid, ours_t):.2f} "
            f"baseline={slope(grid, base_t):.2f}",
        )


# ---------------------------------------------------------------------------- rss
def rss_child(args) -> None:
    """In a fresh process: one training job at m=64 sized like the default workflow's
    (1,024/256/512 sequences, batch 128, T=100, tanh), then print its peak RSS in MB."""
    spec = TargetSpec(kind="linear", kernel="pol", kernel_params={"s": 0.1, "p": 1.1}, T=args.T)
    data = make_target(spec, n_train=1024, n_val=256, n_test=512, seed=0)
    student = make_student(64, "tanh", seed=1)
    cfg = TrainConfig(steps=args.rss_steps, batch_size=128, eval_every=25)
    student, _, _ = train_student(
        student, data, cfg, torch.Generator().manual_seed(0), log=io.StringIO()
    )
    evaluate(student, data["x_test"], data["y_test"])
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    exec, so a child forked from a large parent would report the parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_rss(args, table: Table) -> None:
    """Peak RSS of a training job at m=64, measured in a child process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child"]
    cmd += ["--threads", str(args.threads), "--T", str(args.T), "--rss-steps", str(args.rss_steps)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        table.note("rss", f"status=child_failed rc={done.returncode}")
        print(done.stderr, file=sys.stderr)
        return
    peak = float(done.stdout.split()[-1])
    table.note(
        "rss",
        f"act=tanh m=64 structure=orthogonal steps={args.rss_steps} batch=128 T={args.T} "
        f"peak_rss_mb={peak:.1f} target_mb={RSS_TARGET_MB:.0f} "
        f"met={'yes' if peak < RSS_TARGET_MB else 'no'}",
    )


# ---------------------------------------------------------------------------- e2e
SNAKEMAKE_LOG_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6})")
SNAKEMAKE_ELAPSED = re.compile(r"Elapsed time: (?:(\d+) days?, )?(\d+):(\d+):([\d.]+)")
SNAKEMAKE_STEPS = re.compile(r"(\d+) of (\d+) steps")
WIDTH_64 = re.compile(r"(?:^|[/_=.\-])(?:m|w|width)?[=_\-]?64(?:[/_.\-=]|$)")


def read_benchmarks(root: Path) -> list[tuple[Path, dict]]:
    rows = []
    for path in sorted(root.glob("**/*.tsv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                rows.append((path, row))
    return rows


def as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def snakemake_runs(snakemake_dir: Path) -> list[dict]:
    """Snakemake's own logs, oldest first: wall clock (its "Elapsed time" line, else the
    log's modification time minus the start time in its name) and steps done."""
    runs = []
    for path in sorted((snakemake_dir / "log").glob("*.snakemake.log")):
        text = path.read_text(errors="replace")
        elapsed = SNAKEMAKE_ELAPSED.findall(text)
        if elapsed:
            days, h, m, sec = elapsed[-1]
            wall = 86400 * int(days or 0) + 3600 * int(h) + 60 * int(m) + float(sec)
        else:
            start = SNAKEMAKE_LOG_TIME.search(path.name)
            if not start:
                continue
            stamp = datetime.strptime(start.group(1), "%Y-%m-%dT%H%M%S").timestamp()
            wall = path.stat().st_mtime - stamp
        steps = SNAKEMAKE_STEPS.findall(text)
        done, total = (int(v) for v in steps[-1]) if steps else (0, 0)
        runs.append({"log": path.name, "wall": wall, "done": done, "total": total})
    return runs


def report_wall_clock(args, table: Table) -> None:
    runs = [r for r in snakemake_runs(args.snakemake_dir) if r["done"] > 0]
    if runs:
        last = runs[-1]
        biggest = max(reversed(runs), key=lambda r: r["done"])  # the latest of the largest
        for name, run in (("wall_clock_last_run", last), ("wall_clock_largest_run", biggest)):
            table.note(
                "e2e",
                f"quantity={name} value={run['wall']:.1f} unit=s "
                f"steps={run['done']}/{run['total']} source={run['log']}",
            )
            if last is biggest:
                break
        return
    files = [p for p in args.log_dir.glob("**/*") if p.is_file()]
    if len(files) > 1:  # job logs only: from the end of the first job to the end of the last
        mtimes = [p.stat().st_mtime for p in files]
        table.note(
            "e2e",
            f"quantity=wall_clock_last_run value={max(mtimes) - min(mtimes):.1f} unit=s "
            "source=logs_mtime_span(lower_bound)",
        )
        return
    table.note("e2e", "quantity=wall_clock_last_run status=not_found")


def bench_e2e(args, table: Table) -> None:
    """Section 4: the last Snakemake run, from its benchmark files."""
    rows = read_benchmarks(args.bench_dir)
    if not rows:
        table.note("e2e", f"status=no_benchmark_files dir={args.bench_dir}")
        return
    seconds = [as_float(r.get("s")) for _, r in rows]
    table.note(
        "e2e",
        f"quantity=summed_job_seconds value={np.nansum(seconds):.1f} unit=s jobs={len(rows)}",
    )
    by_rule: dict[str, list[float]] = {}
    for (path, _), sec in zip(rows, seconds, strict=True):
        rule = path.relative_to(args.bench_dir).parts[0].removesuffix(".tsv")
        by_rule.setdefault(rule, []).append(sec)
    for rule, secs in sorted(by_rule.items()):
        if len(by_rule) > 1:
            table.note(
                "e2e",
                f"quantity=summed_job_seconds rule={rule} value={np.nansum(secs):.1f} unit=s "
                f"jobs={len(secs)}",
            )
    rss = [
        as_float(r.get("max_rss"))
        for path, r in rows
        if "train" in str(path.relative_to(args.bench_dir))
        and WIDTH_64.search(str(path.relative_to(args.bench_dir)))
    ]
    rss = [v for v in rss if math.isfinite(v)]
    if rss:
        peak = max(rss)
        table.note(
            "e2e",
            f"quantity=max_rss_train_m64 value={peak:.1f} unit=MB jobs={len(rss)} "
            f"target_mb={RSS_TARGET_MB:.0f} met={'yes' if peak < RSS_TARGET_MB else 'no'}",
        )
    else:
        table.note("e2e", "quantity=max_rss_train_m64 status=no_train_jobs_at_m64")
    report_wall_clock(args, table)


# ---------------------------------------------------------------------------- pack
STARTUP_IMPORTS = "torch, pandas, numpy, scipy.stats"  # what every rule script imports


class Shape(NamedTuple):
    """The student shape of a packed-training measurement."""

    config: str  # the config it comes from
    structure: str
    activation: str
    width: int
    dtype: str
    param: str = "direct"


def read_config(path: Path) -> dict:
    """The config a run of ``path`` sees: an overlay merged over config/config.yaml."""
    from curse_memory.checks import merge_config

    default = ROOT / "config" / "config.yaml"
    with open(default) as fh:
        config = yaml.safe_load(fh)
    if Path(path).resolve() == default.resolve():
        return config
    with open(path) as fh:
        return merge_config(config, yaml.safe_load(fh) or {})


def measure_startup(repeats: int = 3, code: str = f"import {STARTUP_IMPORTS}") -> float:
    """Median wall seconds of a fresh Python running ``code`` (a rule script's imports)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def job_seconds(startup: float, steps: int, step_s: float) -> float:
    """Wall seconds of a training job: its process start-up, then ``steps`` steps."""
    return startup + steps * step_s


def itemsize(dtype: str) -> int:
    """Bytes per value of a student dtype (4 for float32, 8 for float64)."""
    return torch.empty(0, dtype=DTYPES[dtype]).element_size()


def pack_size(max_bytes: int, batch: int, width: int, size: int) -> int:
    """Copies per pack within ``max_bytes`` of hidden states per step (``train_pack``'s
    rule; ``size`` is the itemsize in bytes)."""
    return max(1, max_bytes // (batch * width * size))


def subpacks(r: int, max_bytes: int, batch: int, width: int, size: int) -> int:
    """How many packs ``train_pack`` trains r copies as, in turn (its own rule)."""
    return math.ceil(r / pack_size(max_bytes, batch, width, size))


@functools.cache
def timing_data(T: int, n_val: int, n_test: int) -> tuple[dict, ...]:
    """Two targets' ``make_target`` data (pol, exp) of 1,024 training sequences."""
    kernels = {"pol": {"s": 0.1, "p": 1.1}, "exp": {"a": 1.0}}
    return tuple(
        make_target(TargetSpec(kernel=k, kernel_params=p, T=T), 1024, n_val, n_test, seed=i)
        for i, (k, p) in enumerate(kernels.items())
    )


def step_setup(config: dict, T: int, steps: int) -> tuple[TrainConfig, tuple[dict, ...]]:
    """A config's training settings for ``steps`` timed steps, without early stopping,
    and the data. Its validation passes (n_val sequences every eval_every steps) are
    kept at the same rate per step as passes over one batch (n_val = batch)."""
    train, n_val = config["train"], config["data"]["n_val"]
    batch = train["batch_size"]
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=train["lr"],
        clip_norm=train["clip_norm"],
        eval_every=max(1, round(train["eval_every"] * batch / n_val)),
        early_stop_patience=0,
        log_every=10**9,
    )
    return cfg, timing_data(T, batch, 1)


def pack_step(shape: Shape, r: int, train: TrainConfig, datas, max_bytes: int, device="cpu"):
    """(seconds per step, trained models) of ``train_pack`` on r copies of ``shape``.

    The time is the sum of the (sub-)packs' own wall clocks (set-up, steps, validation
    passes; not the final evaluation of each copy) over the number of steps.
    """
    cfg = StudentConfig(
        width=shape.width,
        structure=shape.structure,
        parameterisation=shape.param,
        activation=shape.activation,
        dtype=shape.dtype,
    )
    models = [
        StudentRNN(cfg, generator=torch.Generator().manual_seed(1000 * i + shape.width))
        for i in range(r)
    ]
    gens = [torch.Generator().manual_seed(i) for i in range(r)]
    datas = [datas[i % len(datas)] for i in range(r)]
    out = train_pack(
        models, datas, train, gens, device=device, log=io.StringIO(), max_bytes=max_bytes
    )
    size = pack_size(max_bytes, train.batch_size, shape.width, itemsize(shape.dtype))
    wall = sum(out[lo][2]["wall_s"] for lo in range(0, r, size))
    return wall / train.steps, [model for model, _, _ in out]


def median_steps(fns: list, repeats: int) -> list[float]:
    """Median seconds per step of each ``pack_step`` closure, all run in turn per repeat."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            ts.append(fn()[0])
    return [statistics.median(ts) for ts in times]


def pack_shapes(args) -> list[tuple[Shape, dict]]:
    """The default config's students (diagonal; its activations, widths, dtype) and the
    paper config's diagonal tanh students in float64; ``--pack-widths`` sets the widths."""
    shapes = []
    for name, file, acts, dtype in (
        ("default", "config.yaml", None, None),
        ("paper", "paper.yaml", ["tanh"], "float64"),
    ):
        config = read_config(ROOT / "config" / file)
        s = config["students"]
        for act, m in product(acts or s["activations"], args.pack_widths or s["widths"]):
            shapes.append((Shape(name, "diagonal", act, m, dtype or s["dtype"]), config))
    return shapes


def pack_variants(rs: list[int], batch: int, width: int, size: int) -> list[tuple[int, int]]:
    """(r, max_bytes) to time: the workflow's PACK_BYTES, preceded by one pack of all r
    (max_bytes = r x batch x m x itemsize ``size``) where PACK_BYTES splits them."""
    out = []
    for r in rs:
        if subpacks(r, PACK_BYTES, batch, width, size) > 1:
            out.append((r, r * batch * width * size))
        out.append((r, PACK_BYTES))
    return out


def bench_pack(args, table: Table, startup: float) -> None:
    """Section 6: packed training against one student per job, start-up included."""
    rs, S = sorted(set(args.pack_r) | {1}), args.job_steps
    for shape, config in pack_shapes(args):
        train, datas = step_setup(config, args.T, args.pack_steps)
        B, size = train.batch_size, itemsize(shape.dtype)
        pack_step(shape, 1, replace(train, steps=2), datas, PACK_BYTES)  # warm-up
        variants = pack_variants(rs, B, shape.width, size)
        fns = [functools.partial(pack_step, shape, r, train, datas, lim) for r, lim in variants]
        steps = median_steps(fns, args.pack_repeats)
        single = steps[variants.index((1, PACK_BYTES))]
        for (r, limit), step in zip(variants, steps, strict=True):
            common = (
                f"config={shape.config} act={shape.activation} m={shape.width} r={r} "
                f"dtype={shape.dtype} T={args.T} B={B} max_bytes={limit} "
                f"packs={subpacks(r, limit, B, shape.width, size)}"
            )
            ours = job_seconds(startup, S, step) / (r * S)
            table.add(
                "pack",
                f"{common} S={S} startup_s={startup:.2f}",
                1e3 * ours,
                1e3 * job_seconds(startup, S, single) / S,
            )
            table.add("pack-step", common, 1e3 * step / r, 1e3 * single)


def autograd_pack_forward(params: dict, x: Tensor, cfg: StudentConfig, maps: list) -> Tensor:
    """The diagonal rnn of r copies, x (r, b, t, d), by autograd through the Euler loop:
    the baseline of section ``bptt`` (the same maths and layout as ``DiagonalRecurrence``:
    each step's states (r, m, b), the readout (r, o, m) x (r, m, b))."""
    a = recurrence(params, cfg, maps=maps).unsqueeze(-1)  # (r, m, 1)
    U, c = params["U"], params["c"]
    z = params["b"][None, :, :, None] + torch.einsum("rmd,rbtd->trmb", U, x)
    z = z.contiguous()  # (t, r, m, b): each step's block contiguous, as ours
    act, h, ys = ACTIVATIONS[cfg.activation], torch.zeros_like(z[0]), []
    for zk in z.unbind(0):
        h = h + cfg.dt * act(torch.addcmul(zk, h, a, value=-1.0))
        ys.append(torch.bmm(c, h))  # (r, o, b)
    return torch.stack(ys, dim=2).transpose(1, 3) + params["c0"][:, None, None, :]  # (r, b, t, o)


torch_forward = functools.partial(student_forward, kernel="torch")  # the op-by-op time loop
fused_forward = functools.partial(student_forward, kernel="fused")  # curse_memory.kernels


def bptt_step(fwd, params: dict, x: Tensor, y: Tensor, cfg: StudentConfig, maps: list):
    """A closure: the MSE of a pack by ``fwd`` and its gradients in fresh leaf parameters."""
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}

    def step():
        loss = mse(fwd(leaves, x, cfg, maps=maps), y)
        return float(loss.detach()), torch.autograd.grad(loss, list(leaves.values()))

    return step


def bench_bptt(args, table: Table) -> None:
    """Section 8: the hand-written backward pass against autograd through the loop."""
    s = read_config(ROOT / "config" / "config.yaml")["students"]
    B, widths = 128, args.bptt_widths or s["widths"]
    for act, m, r in product(("tanh", "hardtanh"), widths, args.bptt_r):
        maps = ["direct", "softplus"] * (r // 2) + ["direct"] * (r % 2)
        cfgs = [StudentConfig(width=m, activation=act, parameterisation=p) for p in maps]
        models = [
            StudentRNN(c, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(cfgs)
        ]
        params, cfg, _ = stack_students(models)
        gen = torch.Generator().manual_seed(m)
        x, y = (torch.randn(r, B, args.T, 1, generator=gen) for _ in range(2))
        p64 = {k: v.double() for k, v in params.items()}
        cfg64 = replace(cfg, dtype="float64")
        loss_o, grad_o = bptt_step(torch_forward, p64, x.double(), y.double(), cfg64, maps)()
        loss_b, grad_b = bptt_step(
            autograd_pack_forward, p64, x.double(), y.double(), cfg64, maps
        )()
        rel_loss = abs(loss_o - loss_b) / abs(loss_b)
        rel_grad = max(
            float((g - h).norm() / h.norm()) for g, h in zip(grad_o, grad_b, strict=True)
        )
        setting = f"act={act} m={m} r={r} T={args.T} B={B} dtype={cfg.dtype}"
        table.check(
            f"bptt {setting} loss_rel={rel_loss:.2e} grad_rel={rel_grad:.2e} tol=1e-10",
            rel_loss <= 1e-10 and rel_grad <= 1e-10,
        )
        fns = [
            bptt_step(fwd, params, x, y, cfg, maps)
            for fwd in (torch_forward, autograd_pack_forward)
        ]
        ours, base = side_by_side(fns, args.repeats, args.warmup, torch.device("cpu"))
        table.add("bptt", setting, ours, base)


def exactly(exact, step):
    """step() with torch.tanh in place of the sigmoid form (the baseline of ``tanh``)."""
    with exact():
        return step()


def bench_tanh(args, table: Table) -> None:
    """Section 9: float32 tanh as 2 sigmoid(2u) - 1 against torch.tanh, in a packed step."""
    s = read_config(ROOT / "config" / "config.yaml")["students"]
    B, widths = 128, args.bptt_widths or s["widths"]
    u = torch.linspace(-20, 20, 400_001, dtype=torch.float64)
    err = float((model.ACTIVATIONS["tanh"](u.float()).double() - torch.tanh(u)).abs().max())
    table.check(f"tanh sigmoid_form_abs_err={err:.1e} tol=3e-7", err <= 3e-7)
    exact = functools.partial(mock.patch.object, model, "sigmoid_tanh", lambda v: False)
    for m, r in product(widths, args.bptt_r):
        cfgs = [StudentConfig(width=m, activation="tanh") for _ in range(r)]
        models = [
            StudentRNN(c, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(cfgs)
        ]
        params, cfg, _ = stack_students(models)
        gen = torch.Generator().manual_seed(m)
        x, y = (torch.randn(r, B, args.T, 1, generator=gen) for _ in range(2))
        ours = bptt_step(torch_forward, params, x, y, cfg, None)
        with torch.no_grad(), exact():
            y_exact = torch_forward(params, x, cfg)
        with torch.no_grad():
            rel = float((torch_forward(params, x, cfg) - y_exact).abs().max())
            rel /= float(y_exact.abs().max())
        setting = f"act=tanh m={m} r={r} T={args.T} B={B} dtype={cfg.dtype}"
        table.check(f"tanh {setting} out_rel={rel:.1e} tol=1e-5", rel <= 1e-5)

        base = bptt_step(torch_forward, params, x, y, cfg, None)
        base = functools.partial(exactly, exact, base)
        t_ours, t_base = side_by_side([ours, base], args.repeats, args.warmup, torch.device("cpu"))
        table.add("tanh", setting, t_ours, t_base)


def relative_gap(ours, base) -> float:
    """Largest |ours - base| / max|base| over a list of tensors (outputs, gradients)."""
    return max(
        float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))
        for a, b in zip(ours, base, strict=True)
    )


def bench_kernel(args, table: Table) -> None:
    """Section 10: the fused kernels (``kernels.FusedRecurrence``, numba) against the torch
    path (``DiagonalRecurrence``, op by op), side by side, tanh rnn, b=128: a packed
    training step's forward and backward (the MSE's gradients; AdamW is the same for
    both), and a perturbation pass (``batched_mse``, r draws, the config's test set),
    after an equivalence check of outputs and gradients (1e-12 float64; float32: the
    gradients' error against float64 at most 2x the torch path's, or 2e-5)."""
    config = read_config(ROOT / "config" / "config.yaml")
    B, n_test = 128, config["data"]["n_test"]
    # the default where it is looked up (model re-exports it from the module that calls it)
    home = sys.modules[model.default_kernel.__module__]
    torch_path = functools.partial(mock.patch.object, home, "default_kernel", lambda: "torch")
    for dtype, m, r in product(("float32", "float64"), args.kernel_widths, args.kernel_r):
        maps = ["direct", "softplus"] * (r // 2) + ["direct"] * (r % 2)
        cfgs = [StudentConfig(width=m, activation="tanh", parameterisation=p, dtype=dtype)
                for p in maps]  # fmt: skip
        models = [
            StudentRNN(c, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(cfgs)
        ]
        params, cfg, _ = stack_students(models)
        gen = torch.Generator().manual_seed(m)
        x, y = (torch.randn(r, B, args.T, 1, generator=gen, dtype=cfg.torch_dtype) for _ in "xy")
        fused = bptt_step(
            functools.partial(student_forward, kernel="fused"), params, x, y, cfg, maps
        )
        base = bptt_step(
            functools.partial(student_forward, kernel="torch"), params, x, y, cfg, maps
        )
        (loss_f, grad_f), (loss_b, grad_b) = fused(), base()
        tol = 1e-12 if dtype == "float64" else 1e-5
        gap = max(abs(loss_f - loss_b) / abs(loss_b), relative_gap(grad_f, grad_b))
        if dtype == "float32":  # sums of 1e4 float32 terms in another order: judge both
            p64 = {k: v.double() for k, v in params.items()}  # against float64
            cfg64 = replace(cfg, dtype="float64")
            exact = bptt_step(torch_forward, p64, x.double(), y.double(), cfg64, maps)()[1]
            exact = [g.float() for g in exact]
            gap = relative_gap(grad_f, exact) / max(relative_gap(grad_b, exact), 1e-5)
            tol = 2.0  # the fused kernel's float32 error at most 2x the torch path's
        setting = f"act=tanh m={m} r={r} T={args.T} B={B} dtype={dtype}"
        table.check(f"kernel {setting} grad_rel={gap:.1e} tol={tol:.0e}", gap <= tol)
        ours, theirs = side_by_side([fused, base], args.repeats, args.warmup, torch.device("cpu"))
        table.add("kernel-step", setting, ours, theirs)

        xt, yt = (
            torch.randn(n_test, args.T, 1, generator=gen, dtype=cfg.torch_dtype) for _ in "xy"
        )
        with torch.no_grad():
            errors_f = batched_mse(params, xt, yt, cfg)
            with torch_path(), mock.patch.object(kernels, "forward", wraps=kernels.forward) as k:
                errors_b = batched_mse(params, xt, yt, cfg)
        gap, tol = relative_gap([errors_f], [errors_b]), 1e-12 if dtype == "float64" else 1e-5
        setting = f"act=tanh m={m} r={r} T={args.T} n={n_test} dtype={dtype}"
        table.check(f"kernel {setting} baseline_fused_calls={k.call_count}", k.call_count == 0)
        table.check(f"kernel {setting} mse_rel={gap:.1e} tol={tol:.0e}", gap <= tol)
        fns = [functools.partial(batched_mse, params, xt, yt, cfg)]
        fns.append(functools.partial(exactly, torch_path, fns[0]))
        with torch.no_grad():
            ours, theirs = side_by_side(fns, args.repeats, args.warmup, torch.device("cpu"))
        table.add("kernel-sweep", setting, ours, theirs)


def bench_gpu(args, table: Table, device: torch.device | None = None) -> None:
    """Section 7: the packed step on the GPU, one pack per r, against r=1 on the GPU."""
    if device is None and not torch.cuda.is_available():
        table.note("gpu", "skipped: no CUDA")
        return
    device = device or torch.device("cuda")
    rs = sorted(set(args.gpu_r) | {1})
    for shape, config in pack_shapes(args):
        train, datas = step_setup(config, args.T, args.pack_steps)
        B, m = train.batch_size, shape.width
        per_copy = B * m * itemsize(shape.dtype)  # bytes of hidden states per copy and step
        pack_step(shape, 1, replace(train, steps=2), datas, PACK_BYTES, device)  # warm-up
        fns = [
            functools.partial(pack_step, shape, r, train, datas, r * per_copy, device) for r in rs
        ]
        steps = median_steps(fns, args.pack_repeats)
        for r, step in zip(rs, steps, strict=True):
            setting = (
                f"config={shape.config} act={shape.activation} m={m} r={r} dtype={shape.dtype} "
                f"T={args.T} B={B} device={device.type} packs=1"
            )
            table.add("gpu", setting, 1e3 * step / r, 1e3 * steps[0])


# ---------------------------------------------------------------------------- project
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


# ---------------------------------------------------------------------------- main
def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: fewer repeats and sizes")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training-step lines: auto = cpu, plus cuda when available",
    )
    p.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall: elapsed time; cpu: this process's CPU time, robust to other load on "
        "the machine (CPU devices only)",
    )
    p.add_argument(
        "--sections",
        nargs="+",
        default=list(SECTIONS),
        help=f"subset of {', '.join(SECTIONS)} (space- or comma-separated)",
    )
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/bench.tsv"))
    p.add_argument("--widths", type=int_list, help="training-step widths (default 8,16,32,64)")
    p.add_argument("--batch", type=int, default=512, help="sequences per training step")
    p.add_argument("--T", type=int, default=100, help="sequence length")
    p.add_argument("--repeats", type=int, help="timed repeats per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    p.add_argument("--sweep-widths", type=int_list, help="default 8,64")
    p.add_argument("--sweep-betas", type=int, help="first betas of the grid (default all 22)")
    p.add_argument("--sweep-draws", type=int, help="draws per beta (default 30)")
    p.add_argument("--sweep-n", type=int, help="test sequences (default 2048)")
    p.add_argument(
        "--ref-sweep-betas",
        type=int,
        help="betas for the sweep against the float64 baseline one by one (default 4; 0 skips)",
    )
    p.add_argument("--sweep-train-steps", type=int, help="training steps of the swept student")
    p.add_argument("--scaling-T", type=int_list, help="default 100,200,400")
    p.add_argument("--scaling-m", type=int_list, help="default 8,16,32,64")
    p.add_argument("--scaling-fixed-m", type=int, default=32, help="m while T varies")
    p.add_argument("--scaling-repeats", type=int, help="timed repeats per scaling point")
    p.add_argument("--rss-steps", type=int, help="training steps of the RSS job (default 100)")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--startup-s", type=float, help="job start-up seconds (default: measured)")
    p.add_argument("--pack-steps", type=int, help="timed steps per pack (default 60)")
    p.add_argument("--pack-r", type=int_list, default=[1, 4, 12, 48], help="students per pack")
    p.add_argument("--pack-widths", type=int_list, help="widths (default: the configs')")
    p.add_argument("--pack-repeats", type=int, help="timed repeats per pack (default 3)")
    p.add_argument("--job-steps", type=int, help="steps of a job (default: config.yaml's)")
    p.add_argument("--gpu-r", type=int_list, default=[1, 12, 48, 192], help="gpu: r values")
    p.add_argument("--bptt-r", type=int_list, default=[1, 12], help="bptt: students per pack")
    p.add_argument("--bptt-widths", type=int_list, help="bptt: widths (default: config.yaml's)")
    p.add_argument(
        "--kernel-widths", type=int_list, default=[2, 4, 6, 8, 14, 64], help="kernel: widths"
    )
    p.add_argument("--kernel-r", type=int_list, default=[1, 12], help="kernel: students per pack")
    p.add_argument("--project-config", type=Path, default=ROOT / "config" / "paper.yaml")
    p.add_argument("--project-cores", type=int_list, default=[2, 16], help="cores to project")
    p.add_argument(
        "--project-pack-by",
        type=lambda text: [a for a in text.split(",") if a],
        help="packed axes (default: the config's train.pack_by, else seed,target)",
    )
    p.add_argument("--project-steps", type=int, help="timed steps per shape (default 20)")
    p.add_argument("--project-sweep-n", type=int, default=256, help="test sequences timed")
    p.add_argument("--project-sweep-betas", type=int, default=2, help="nonzero betas timed")
    p.add_argument("--bench-dir", type=Path, default=Path("benchmarks"))
    p.add_argument("--log-dir", type=Path, default=Path("logs"))
    p.add_argument("--snakemake-dir", type=Path, default=Path(".snakemake"))
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "widths": [8, 64] if quick else [8, 16, 32, 64],
        "repeats": 3 if quick else 9,
        "sweep_widths": [8] if quick else [8, 64],
        "sweep_betas": 4 if quick else len(beta_grid()),
        "sweep_draws": 8 if quick else 30,
        "ref_sweep_betas": 2 if quick else 4,
        "sweep_n": 256 if quick else 2048,
        "sweep_train_steps": 10 if quick else 100,
        "scaling_T": [100, 200] if quick else [100, 200, 400],
        "scaling_m": [8, 32] if quick else [8, 16, 32, 64],
        "scaling_repeats": 2 if quick else 5,
        "rss_steps": 10 if quick else 100,
        "pack_steps": 10 if quick else 60,
        "pack_repeats": 1 if quick else 3,
        "project_steps": 4 if quick else 20,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.job_steps is None:
        args.job_steps = read_config(ROOT / "config" / "config.yaml")["train"]["steps"]
    args.sections = [s for item in args.sections for s in item.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return 0
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        print("--device cuda: CUDA is not available", file=sys.stderr)
        return 2
    devices = {"auto": ["cpu", "cuda"] if cuda else ["cpu"], "cpu": ["cpu"], "cuda": ["cuda"]}
    devices = [torch.device(d) for d in devices[args.device]]
    if args.clock == "cpu" and any(d.type == "cuda" for d in devices):
        print("--clock cpu does not measure GPU time; use --clock wall", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0).replace(" ", "_") if cuda else "none"
    print(
        f"env torch={torch.__version__} threads={torch.get_num_threads()} "
        f"devices={','.join(d.type for d in devices)} gpu={gpu} cuda_available={cuda} "
        f"python={platform.python_version()} quick={args.quick} clock={args.clock}",
        flush=True,
    )
    table = Table()
    startup = args.startup_s
    if {"pack", "project"} & set(args.sections):
        if startup is None:
            startup = measure_startup()  # once, before anything else loads the machine
        table.note("startup", f"imports={STARTUP_IMPORTS.replace(' ', '')} seconds={startup:.3f}")
    if "train" in args.sections:
        for device in devices:
            bench_train_steps(args, table, device)
    if "sweep" in args.sections:
        bench_sweep(args, table)
    if "scaling" in args.sections:
        bench_scaling(args, table, devices[0])
    if "rss" in args.sections:
        bench_rss(args, table)
    if "e2e" in args.sections:
        bench_e2e(args, table)
    if "pack" in args.sections:
        bench_pack(args, table, startup)
    if "gpu" in args.sections:
        bench_gpu(args, table)
    if "bptt" in args.sections:
        bench_bptt(args, table)
    if "tanh" in args.sections:
        bench_tanh(args, table)
    if "kernel" in args.sections:
        bench_kernel(args, table)
    if "project" in args.sections:
        bench_project(args, table, startup)
    table.write(args.out)
    print(f"wrote {args.out}", flush=True)
    if table.failed:
        print(f"{len(table.failed)} equivalence check(s) FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
