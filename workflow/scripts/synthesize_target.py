"""Synthesize one target's train/val/test splits, one file per seed (method §1)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from curse_memory.targets import TargetSpec, make_target

spec = TargetSpec(**snakemake.params.spec)
sizes = snakemake.params.sizes
for seed, path in zip(snakemake.params.seeds, snakemake.output.data, strict=True):
    data = make_target(spec, sizes["n_train"], sizes["n_val"], sizes["n_test"], int(seed))
    torch.save(data, path)
    print(
        f"{spec.kind}/{spec.kernel} T={spec.T} seed={seed}: y_var={data['y_var']:.4g}",
        file=sys.stderr,
    )
