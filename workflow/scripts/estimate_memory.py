"""Memory function of a target or a trained student, and its tail fit (SPEC §4)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np
import pandas as pd
import torch

from curse_memory.memory import decay_fit, memory_function
from curse_memory.model import StudentConfig, StudentRNN, load_student
from curse_memory.targets import TargetSpec

sm = snakemake
torch.set_num_threads(sm.threads)
p = sm.params.memory
w = sm.wildcards
if sm.rule == "estimate_student_memory":  # a trained student, evaluated in float64
    kind, target = "student", w.target
    subject = f"{w.target}/{w.structure}/{w.param}/{w.activation}/w{w.width}/s{w.seed}"
    trained, _ = load_student(sm.input.model)
    # float64 and the time loop: the horizon is long (the convolution path is O(T^2))
    config = StudentConfig(**(vars(trained.config) | {"dtype": "float64", "fast_linear": False}))
    model = StudentRNN(config)
    model.load_state_dict({k: v.double() for k, v in trained.state_dict().items()})
    d, dt, analytic = config.d_in, config.dt, None

    def fn(x):
        with torch.no_grad():
            return model(torch.as_tensor(x)).numpy()

else:  # a target functional, rebuilt from its stored spec
    spec = TargetSpec(**torch.load(sm.input.target, weights_only=True)["spec"])
    kind, target, subject = "target", w.target, w.target
    fn, d, dt, analytic = spec.functional(), spec.d, spec.dt, spec.analytic_memory

t, memory = memory_function(fn, p["horizon"], d, dt, p["amplitudes"])
fit = decay_fit(t, memory, t_min=p["fit_from"])
print(f"{subject}: {fit}", file=sys.stderr)

# the table keeps ~200 log-spaced times (figures are log-scaled); the fit used all of them
keep = np.unique(np.geomspace(1, len(t), 200).astype(int) - 1)
table = pd.DataFrame({"subject": subject, "kind": kind, "target": target, "t": t[keep]})
table["memory"] = memory[keep]
table["analytic"] = analytic(t[keep]) if analytic is not None else np.nan
table.to_csv(sm.output.memory, sep="\t", index=False)
fit_row = {"subject": subject, "kind": kind, "target": target} | fit
pd.DataFrame([fit_row]).to_csv(sm.output.fit, sep="\t", index=False)
