"""Section ``gpu``: the packed step on the GPU against one student alone there."""

from __future__ import annotations

import functools
from dataclasses import replace

import torch

from bench.common import Table
from bench.sections.pack import itemsize, median_steps, pack_shapes, pack_step, step_setup
from curse_memory.training import PACK_BYTES


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
