"""E_m(beta) of one trained student under raw-parameter perturbations (SPEC §3)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd
import torch

from curse_memory.model import load_student
from curse_memory.perturbation import beta_grid, monotone_envelope, perturbation_sweep
from curse_memory.training import resolve_device

sm = snakemake
torch.set_num_threads(sm.threads)
p = sm.params.perturbation
device = resolve_device()
model, _ = load_student(sm.input.model, map_location=device)
data = torch.load(sm.input.target, weights_only=True)
betas = beta_grid(p["beta_min"], p["beta_step"], p["n_betas"])

rows = []
for norm in p["norms"]:
    generator = torch.Generator().manual_seed(int(sm.wildcards.seed))
    sweep = perturbation_sweep(
        model, data["x_test"], data["y_test"], betas, p["repeats"], norm, generator
    )
    envelope = monotone_envelope([r["error"] for r in sweep])
    for r, e in zip(sweep, envelope, strict=True):
        rows.append({"norm": norm, "beta": r["beta"], "error": e, "error_max": r["error"]})
        rows[-1] |= {k: r[k] for k in ("n_diverged", "n_eig_negative", "n_eig_euler")}
    print(f"norm {norm}: E(0)={envelope[0]:.3e} E(max)={envelope[-1]:.3e}", file=sys.stderr)

keys = {k: sm.wildcards[k] for k in ("target", "structure", "param", "activation")}
keys |= {"width": int(sm.wildcards.width), "seed": int(sm.wildcards.seed)}
table = pd.DataFrame(rows).assign(**keys, tau=p["tau_factor"] * data["y_var"])
table[[*keys, *rows[0], "tau"]].to_csv(sm.output.table, sep="\t", index=False)
