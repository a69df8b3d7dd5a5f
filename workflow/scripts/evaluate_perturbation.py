"""E_m(beta) of each student of a pack under raw-parameter perturbations (method §3)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd
import torch

from curse_memory.curves import monotone_envelope
from curse_memory.model import load_student, read_checkpoint, set_default_kernel
from curse_memory.perturbation import beta_grid, perturbation_sweep
from curse_memory.training import resolve_device

COUNTS = ("n_diverged", "n_eig_negative", "n_eig_euler")  # eigenvalue counts: None for lstm, gru
sm = snakemake
torch.set_num_threads(sm.threads)
set_default_kernel(sm.config["train"]["kernel"])  # the time loop the config chose
p = sm.params.perturbation
device = resolve_device()
betas = beta_grid(p["beta_min"], p["beta_step"], p["n_betas"])
method = {"method": p["method"], "steps": p["ascent_steps"], "step_size": p["ascent_step"]}
inputs = zip(
    sm.params.members,
    sm.input.targets,
    sm.input.models,
    sm.output.tables,
    sm.output.draws,
    strict=True,
)
for member, target_path, model_path, out, draws_out in inputs:
    model, _ = load_student(model_path, map_location=device)
    data = read_checkpoint(target_path)
    rows, draws = [], []
    for norm in p["norms"]:
        generator = torch.Generator().manual_seed(int(member["seed"]))
        sweep = perturbation_sweep(
            model, data["x_test"], data["y_test"], betas, p["repeats"], norm, generator, **method
        )
        for r in sweep:  # draw i at every beta is beta times the same direction i
            sampled = r.get("errors_sampled", r["errors"])
            for i, (error, first) in enumerate(zip(r["errors"], sampled, strict=True)):
                draws.append({"norm": norm, "beta": r["beta"], "draw": i, "error": error})
                if p["method"] == "ascent":
                    draws[-1]["error_sampled"] = first
        envelope = monotone_envelope([r["error"] for r in sweep])
        for r, e in zip(sweep, envelope, strict=True):
            rows.append({"norm": norm, "beta": r["beta"], "error": e, "error_max": r["error"]})
            rows[-1] |= {k: r.get(k) for k in (*COUNTS, "max_abs_lambda")}
        print(f"{model_path} {norm}: E(0)={envelope[0]:.3e} E(max)={envelope[-1]:.3e}",
              file=sys.stderr)  # fmt: skip
    keys = {k: member[k] for k in ("target", "family", "structure", "param", "activation")}
    keys |= {"width": int(member["width"]), "seed": int(member["seed"])}
    zero_error = float(data["y_test"].double().pow(2).mean())  # the zero predictor's test MSE
    table = pd.DataFrame(rows).assign(
        **keys, tau=p["tau_factor"] * data["y_var"], lost_tau=p["lost_factor"] * zero_error
    )
    table[[*keys, *rows[0], "tau", "lost_tau"]].to_csv(out, sep="\t", index=False)
    pd.DataFrame(draws).to_csv(draws_out, sep="\t", index=False)
