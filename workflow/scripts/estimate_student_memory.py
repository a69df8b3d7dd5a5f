"""Memory functions of the trained students of a memory job (every width of a training
pack), one pass per width, and their tail fits (method §4)."""

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
widths = {}  # members by width: the students of one width run as one stacked pass
for i, model in enumerate(models):
    widths.setdefault(model.config.width, []).append(i)
memories = [None] * len(models)
for width, rows in widths.items():
    params, config, maps = stack_students([models[i] for i in rows])

    def fn(x, params=params, config=config, maps=maps):  # this width's students at once
        with torch.no_grad():  # (n, T, d) -> (r, n, T, o)
            return student_forward(params, torch.as_tensor(x), config, maps=maps).numpy()

    t, found = memory_function(fn, p["horizon"], config.d_in, config.dt, p["amplitudes"])
    for i, memory in zip(rows, found, strict=True):
        memories[i] = memory
    print(f"width {width}: {len(rows)} students", file=sys.stderr, flush=True)
outputs = zip(sm.params.members, memories, sm.output.memory, sm.output.fits, strict=True)
for m, memory, memory_out, fit_out in outputs:
    keys = m | {"width": int(m["width"]), "seed": int(m["seed"])}  # the student's identity
    subject = "/".join(str(v) for v in keys.values())  # a label only, never parsed
    labels = {"subject": subject, "kind": "student"} | keys
    table, fit = memory_tables(t, memory, labels, p["fit_from"])
    table.to_csv(memory_out, sep="\t", index=False)
    fit.to_csv(fit_out, sep="\t", index=False)
    print(f"{subject}: {fit.iloc[0].to_dict()}", file=sys.stderr)
