"""Memory functions of the trained students of a pack and their tail fits (method §4)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from curse_memory.memory import memory_tables
from curse_memory.model import load_student, retyped

sm = snakemake
torch.set_num_threads(sm.threads)
p = sm.params.memory
outputs = zip(sm.params.members, sm.input.models, sm.output.memory, sm.output.fits, strict=True)
for m, path, memory_out, fit_out in outputs:
    # float64 and the time loop: the horizon is long (the convolution path is O(T^2))
    model = retyped(load_student(path)[0], "float64", fast_linear=False)

    def fn(x, model=model):
        with torch.no_grad():
            return model(torch.as_tensor(x)).numpy()

    subject = "{target}/{structure}/{param}/{activation}/w{width}/s{seed}".format(**m)
    labels = {"subject": subject, "kind": "student", "target": m["target"]}
    memory, fit = memory_tables(fn, labels, model.config.d_in, model.config.dt, p)
    memory.to_csv(memory_out, sep="\t", index=False)
    fit.to_csv(fit_out, sep="\t", index=False)
    print(f"{subject}: {fit.iloc[0].to_dict()}", file=sys.stderr)
