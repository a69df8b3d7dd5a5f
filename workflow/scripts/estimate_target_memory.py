"""Memory function of a target functional, rebuilt from its stored spec, and its tail fit
(method §4); the analytic |rho| rides along for linear targets."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from curse_memory.api import memory_function
from curse_memory.memory import memory_tables
from curse_memory.model import read_checkpoint
from curse_memory.targets import TargetSpec

sm = snakemake
torch.set_num_threads(sm.threads)  # a Transformer target's attention would oversubscribe
p = sm.params.memory
spec = TargetSpec(**read_checkpoint(sm.input.target)["spec"])
target = sm.wildcards.target
t, memory = memory_function(spec.functional(), p["horizon"], p["amplitudes"], spec.dt, spec.d)
labels = {"subject": target, "kind": "target", "target": target}
table, fit = memory_tables(t, memory, labels, p["fit_from"], spec.analytic_memory)
table.to_csv(sm.output.memory, sep="\t", index=False)
fit.to_csv(sm.output.fit, sep="\t", index=False)
print(f"{target}: {fit.iloc[0].to_dict()}", file=sys.stderr)
