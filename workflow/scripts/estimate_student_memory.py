"""Memory functions of the trained students of a memory job (every width of a training
pack), one pass per width, and their tail fits (method §4)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from curse_memory.memory import memory_tables, student_memories
from curse_memory.model import load_student, set_default_kernel

sm = snakemake
torch.set_num_threads(sm.threads)
set_default_kernel(sm.config["train"]["kernel"])  # the time loop the config chose
p = sm.params.memory
models = [load_student(path)[0] for path in sm.input.models]
t, memories = student_memories(models, p["horizon"], p["amplitudes"])
outputs = zip(sm.params.members, memories, sm.output.memory, sm.output.fits, strict=True)
for m, memory, memory_out, fit_out in outputs:
    keys = m | {"width": int(m["width"]), "seed": int(m["seed"])}  # the student's identity
    subject = "/".join(str(v) for v in keys.values())  # a label only, never parsed
    labels = {"subject": subject, "kind": "student"} | keys
    table, fit = memory_tables(t, memory, labels, p["fit_from"])
    table.to_csv(memory_out, sep="\t", index=False)
    fit.to_csv(fit_out, sep="\t", index=False)
    print(f"{subject}: {fit.iloc[0].to_dict()}", file=sys.stderr)
