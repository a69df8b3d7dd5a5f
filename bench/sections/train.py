"""Section ``train``: one training step, ours against the baseline, checked first."""

from __future__ import annotations

import torch

from bench.common import (
    CHECK_RTOL,
    NaiveRNN,
    Table,
    batch,
    equivalent,
    make_student,
    side_by_side,
    train_step_fn,
)
from curse_memory.model import retyped

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
