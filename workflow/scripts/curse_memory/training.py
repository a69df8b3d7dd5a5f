"""Training a student (SPEC §2): AdamW, clipping, plateau schedule, early stopping.

``target_loss`` implements the paper's width-monotone protocol: a wider student trains
until its validation loss is at most a fraction of the narrower one's, and the summary
records whether it got there.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import StudentRNN


@dataclass
class TrainConfig:
    steps: int = 1000  # optimisation-step budget
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 0.0
    clip_norm: float = 0.5  # gradient-norm clipping; 0 disables
    eval_every: int = 25  # steps between validation passes (and history rows)
    plateau_patience: int = 8  # validation passes without improvement before lr *= factor
    plateau_factor: float = 0.1
    early_stop_patience: int = 20  # validation passes without improvement before stopping
    min_lr: float = 1e-6
    time_weighting: bool = False  # weight the MSE by ((k+1)/(T+1))^2, mean 1
    target_loss: float | None = None  # stop once val loss <= this (width monotonicity)
    log_every: int = 100  # steps between progress lines

    def __post_init__(self):
        for key in ("steps", "batch_size", "eval_every", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if not self.lr > 0:
            raise ValueError("lr must be positive")


def time_weights(T: int, enabled: bool, dtype=torch.float64) -> Tensor | None:
    if not enabled:
        return None
    w = ((torch.arange(T, dtype=dtype) + 1) / (T + 1)) ** 2
    return (w / w.mean())[:, None]  # (t, 1)


def mse(yhat: Tensor, y: Tensor, weights: Tensor | None = None) -> Tensor:
    err = (yhat - y) ** 2
    if weights is not None:
        err = err * weights.to(err.dtype)
    return err.mean()


@torch.no_grad()
def evaluate(model: StudentRNN, x: Tensor, y: Tensor, chunk: int = 1024) -> float:
    """Unweighted MSE over a whole split; inf when the model output is not finite."""
    total = 0.0
    for lo in range(0, len(x), chunk):
        yhat = model(x[lo : lo + chunk])
        total += float(((yhat - y[lo : lo + chunk].to(yhat.dtype)) ** 2).sum())
    loss = total / y.numel()
    return loss if math.isfinite(loss) else math.inf


def train_student(
    model: StudentRNN,
    data: dict,
    cfg: TrainConfig,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    log=sys.stderr,
) -> tuple[StudentRNN, list[dict], dict]:
    """Train ``model`` on ``data`` (the dict of ``make_target``).

    Returns the model at its best validation loss (``direct`` projected, so evaluation
    with w itself is exact), the history (one row per validation pass) and a summary.
    """
    start = time.perf_counter()
    dtype = model.config.torch_dtype
    model.to(device)
    x_tr, y_tr, x_va, y_va = (
        data[k].to(device, dtype) for k in ("x_train", "y_train", "x_val", "y_val")
    )
    weights = time_weights(x_tr.shape[1], cfg.time_weighting, dtype)
    weights = weights.to(device) if weights is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
    )
    best_val, best_state, best_step, stale = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    history, running, diverged, reason = [], [], False, "budget"
    order, cursor = torch.randperm(len(x_tr), generator=generator), 0
    step = 0
    for step in range(1, cfg.steps + 1):
        if cursor + cfg.batch_size > len(order):  # new epoch
            order, cursor = torch.randperm(len(x_tr), generator=generator), 0
        idx = order[cursor : cursor + cfg.batch_size].to(device)
        cursor += cfg.batch_size
        loss = mse(model(x_tr[idx]), y_tr[idx], weights)
        if not torch.isfinite(loss):
            diverged, reason = True, "diverged"
            print(f"step {step}: training loss is not finite; stopping", file=log)
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        running.append(loss.item())
        if step % cfg.eval_every and step != cfg.steps:
            continue
        val = evaluate(model, x_va, y_va)
        sched.step(val)
        eig = model.eigenvalues(raw=False)
        history.append(
            {
                "step": step,
                "train_loss": sum(running) / len(running),
                "val_loss": val,
                "lr": opt.param_groups[0]["lr"],
                "min_eig": float(eig.min()),
            }
        )
        running = []
        if val < best_val:
            best_val, best_state, best_step, stale = val, copy.deepcopy(model.state_dict()), step, 0
        else:
            stale += 1
        if step % cfg.log_every < cfg.eval_every:
            row = history[-1]
            print(
                f"step {step}/{cfg.steps} train {row['train_loss']:.3e} val {val:.3e} "
                f"lr {row['lr']:.1e} min_eig {row['min_eig']:.4f}",
                file=log,
                flush=True,
            )
        if cfg.target_loss is not None and best_val <= cfg.target_loss:
            reason = "target_loss"
            break
        if cfg.early_stop_patience and stale >= cfg.early_stop_patience:
            reason = "early_stop"
            break
    model.load_state_dict(best_state)
    model.project_()
    eig = model.eigenvalues(raw=True)
    summary = {
        "steps": step,
        "best_step": best_step,
        "stop_reason": reason,
        "diverged": diverged and not math.isfinite(best_val),
        "train_loss": evaluate(model, x_tr, y_tr),
        "val_loss": evaluate(model, x_va, y_va),
        "min_eig": float(eig.min()),
        "max_eig": float(eig.max()),
        "target_loss": cfg.target_loss,
        "monotone_ok": None if cfg.target_loss is None else bool(best_val <= cfg.target_loss),
        "wall_s": time.perf_counter() - start,
    }
    print(
        f"done: {reason} at step {step}, best val {best_val:.3e} at step {best_step}, "
        f"eigenvalues in [{summary['min_eig']:.4f}, {summary['max_eig']:.4f}]",
        file=log,
        flush=True,
    )
    return model, history, summary


def resolve_device(device: str = "auto") -> torch.device:
    """auto -> cuda when available, else cpu; the env var CURSE_MEMORY_DEVICE overrides."""
    device = os.environ.get("CURSE_MEMORY_DEVICE", device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but torch sees no CUDA device")
    return torch.device(device)
