"""Section ``scaling``: time per training step as T and m double, and the fitted exponents."""

from __future__ import annotations

import numpy as np
import torch

from bench.common import NaiveRNN, Table, batch, make_student, side_by_side, train_step_fn


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
