"""One training job's seconds with ``train.kernel: fused`` against ``torch``, side by side.

A pack as the default config's jobs hold one (``train.pack_by: [seed, target, param]``):
2 targets (exp, pol) x 2 parameterisations (direct, softplus) x 3 seeds = 12 tanh students
of one width, float32 (``--dtype``), batch 128, T = 100, the config's learning rate,
schedule, clipping and validation cadence, a fixed number of steps (no early stopping, so
both kernels run the same steps). ``train_pack`` runs once per kernel in turn,
``--rounds`` times; the medians of its CPU seconds (one thread) and wall seconds are
printed, with the largest relative gap of the copies' final validation losses.

    PYTHONPATH=workflow/scripts python bench/kernel_job.py --widths 2 8 14 --steps 300
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from dataclasses import fields
from pathlib import Path

import torch
import yaml

from curse_memory.model import StudentConfig, StudentRNN
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import TrainConfig, train_pack

ROOT = Path(__file__).resolve().parents[1]


def pack_job(width: int, kernel: str, steps: int, config: dict, datas: dict, dtype="float32"):
    """(cpu seconds, wall seconds, final validation losses) of one pack's ``train_pack``."""
    names = {f.name for f in fields(TrainConfig)}
    train = {k: v for k, v in config["train"].items() if k in names}
    train.update(steps=steps, monotone_steps=None, early_stop_patience=0, kernel=kernel)
    train.update(log_every=10**9)
    cfg = TrainConfig(**train)
    members = [(t, p, s) for t in datas for p in ("direct", "softplus") for s in config["seeds"]]
    models = [
        StudentRNN(
            StudentConfig(width=width, activation="tanh", parameterisation=p, dtype=dtype),
            generator=torch.Generator().manual_seed(1000 * s + width),
        )
        for _, p, s in members
    ]
    gens = [torch.Generator().manual_seed(s) for _, _, s in members]
    cpu, wall = time.process_time(), time.perf_counter()
    out = train_pack(models, [datas[t] for t, _, _ in members], cfg, gens, log=io.StringIO())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, [summary["val_loss"] for _, _, summary in out]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[2, 8, 14])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args()
    torch.set_num_threads(1)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    d = config["data"]
    datas = {
        name: make_target(
            TargetSpec(kernel=t["kernel"], kernel_params=t["kernel_params"], T=d["T"]),
            d["n_train"],
            d["n_val"],
            d["n_test"],
            seed=i,
        )  # fmt: skip
        for i, (name, t) in enumerate(config["targets"].items())
    }
    pack_job(2, "fused", 2, config, datas, args.dtype)  # load the compiled kernels once
    for width in args.widths:
        runs = {"fused": [], "torch": []}
        for _ in range(args.rounds):
            for kernel, times in runs.items():
                times.append(pack_job(width, kernel, args.steps, config, datas, args.dtype))
        (cf, wf, lf), (ct, wt, lt) = (
            (statistics.median(v[0] for v in r), statistics.median(v[1] for v in r), r[-1][2])
            for r in runs.values()
        )
        gap = max(abs(a - b) / abs(b) for a, b in zip(lf, lt, strict=True))
        print(
            f"job m={width} r=12 steps={args.steps} dtype={args.dtype} "
            f"fused cpu={cf:.1f}s wall={wf:.1f}s "
            f"torch cpu={ct:.1f}s wall={wt:.1f}s ratio_cpu={ct / cf:.1f}x "
            f"ratio_wall={wt / wf:.1f}x val_loss_rel_gap={gap:.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
