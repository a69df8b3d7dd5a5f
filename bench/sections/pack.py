"""Sections ``pack`` and ``pack-step``: packed training against one student per job, and
the helpers that time a pack (shared with ``gpu`` and ``project``).
"""

from __future__ import annotations

import functools
import io
import math
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from itertools import product
from typing import NamedTuple

import torch

from bench.common import ROOT, Table, read_config
from curse_memory.model import DTYPES, StudentConfig, StudentRNN
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import PACK_BYTES, TrainConfig, train_pack

STARTUP_IMPORTS = "torch, pandas, numpy, scipy.stats"  # what every rule script imports


class Shape(NamedTuple):
    """The student shape of a packed-training measurement."""

    config: str  # the config it comes from
    structure: str
    activation: str
    width: int
    dtype: str
    param: str = "direct"
    family: str = "rnn"  # a family's spec (a registered name or a plug-in's module:Name)


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
        family=shape.family,
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
