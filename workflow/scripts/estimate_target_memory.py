"""Memory function of a target functional, rebuilt from its stored spec, and its tail fit
(method §4); the analytic |rho| rides along for linear targets."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from curse_memory.memory import memory_tables
from curse_memory.model import read_checkpoint
from curse_memory.targets import TargetSpec

sm = snakemake
spec = TargetSpec(**read_checkpoint(sm.input.target)["spec"])
target = sm.wildcards.target
labels = {"subject": target, "kind": "target", "target": target}
memory, fit = memory_tables(
    spec.functional(), labels, spec.d, spec.dt, sm.params.memory, spec.analytic_memory
)
memory.to_csv(sm.output.memory, sep="\t", index=False)
fit.to_csv(sm.output.fit, sep="\t", index=False)
print(f"{target}: {fit.iloc[0].to_dict()}", file=sys.stderr)
