"""Memory functions of the trained students of a pack, all in one pass, and their tail
fits (method §4)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from curse_memory.memory import memory_function, memory_tables
from curse_memory.model import load_student, retyped, stack_students, student_forward

sm = snakemake
torch.set_num_threads(sm.threads)
p = sm.params.memory
# float64 and the time loop: the horizon is long (the convolution path is O(T^2))
models = [retyped(load_student(path)[0], "float64", fast_linear=False) for path in sm.input.models]
params, config, maps = stack_students(models)


def fn(x):  # every student of the pack at once: (n, T, d) -> (r, n, T, o)
    with torch.no_grad():
        return student_forward(params, torch.as_tensor(x), config, maps=maps).numpy()


t, memories = memory_function(fn, p["horizon"], config.d_in, config.dt, p["amplitudes"])
outputs = zip(sm.params.members, memories, sm.output.memory, sm.output.fits, strict=True)
for m, memory, memory_out, fit_out in outputs:
    keys = m | {"width": int(m["width"]), "seed": int(m["seed"])}  # the student's identity
    subject = "/".join(str(v) for v in keys.values())  # a label only, never parsed
    labels = {"subject": subject, "kind": "student"} | keys
    table, fit = memory_tables(t, memory, labels, p["fit_from"])
    table.to_csv(memory_out, sep="\t", index=False)
    fit.to_csv(fit_out, sep="\t", index=False)
    print(f"{subject}: {fit.iloc[0].to_dict()}", file=sys.stderr)
