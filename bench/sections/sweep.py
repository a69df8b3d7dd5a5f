"""Section ``sweep``: a perturbation sweep, batched against one by one and against the
float64 baseline.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from torch import Tensor

from bench.common import NaiveRNN, Table, clock, make_student
from curse_memory.model import StudentRNN
from curse_memory.perturbation import beta_grid, draw_perturbations, perturbation_sweep
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import TrainConfig, train_student


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
    start = clock()
    if batched == "reference":
        errors = reference_errors(student, x, y, beta, draws, gen)
    else:
        rows = perturbation_sweep(student, x, y, [beta], draws, "inf", gen, batched=batched)
        errors = rows[0]["errors"]
    return 1e3 * (clock() - start), errors


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
