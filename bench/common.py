"""Shared helpers of the benchmark sections: the repository root, the clock, the
measurement table (its line and TSV formats, the equivalence checks), side-by-side timing,
the float64 baseline after the reference implementation, and config reading.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from curse_memory.model import ACTIVATIONS, PARAMETERISATIONS, StudentConfig, StudentRNN
from curse_memory.training import mse

ROOT = Path(__file__).resolve().parents[1]  # the repository


CHECK_RTOL = 1e-6  # the loss of ours and of the baseline, both in float64


RSS_TARGET_MB = 1024.0  # peak RSS target of a training job at m=64


CLOCK = time.perf_counter  # --clock cpu: time.process_time (this process's CPU time)


def clock() -> float:
    """The benchmark's clock (``CLOCK``, which the command line's ``--clock`` sets)."""
    return CLOCK()


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
