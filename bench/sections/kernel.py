"""Section ``kernel``: the fused kernels against the torch path."""

from __future__ import annotations

import functools
import sys
from dataclasses import replace
from itertools import product
from unittest import mock

import torch

from bench.common import ROOT, Table, read_config, side_by_side
from bench.sections.bptt import bptt_step, exactly, torch_forward
from curse_memory import kernels, model
from curse_memory.model import StudentConfig, StudentRNN, stack_students, student_forward
from curse_memory.perturbation import batched_mse


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
