"""Train one student; with width monotonicity, until it beats the narrower one (SPEC §2)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import json

import pandas as pd
import torch

from curse_memory.model import StudentConfig, StudentRNN, save_student
from curse_memory.training import TrainConfig, evaluate, resolve_device, train_student

sm = snakemake
torch.set_num_threads(sm.threads)
seed, width = int(sm.wildcards.seed), int(sm.wildcards.width)
target_loss = None
if sm.input.previous:  # the narrower student's metrics (a DAG edge, no side files)
    with open(sm.input.previous) as f:
        target_loss = sm.params.monotone_factor * json.load(f)["val_loss"]

data = torch.load(sm.input.target, weights_only=True)
device = resolve_device()
config = StudentConfig(**sm.params.student)
# paired design: every parameterisation of a (width, seed) starts from the same draw
model = StudentRNN(config, generator=torch.Generator().manual_seed(1000 * seed + width))
train = TrainConfig(**sm.params.train, target_loss=target_loss)
print(f"{sm.wildcards} on {device}, {model.num_params()} parameters", file=sys.stderr)

model, history, summary = train_student(
    model, data, train, torch.Generator().manual_seed(seed), device=device
)
summary["test_loss"] = evaluate(model, data["x_test"].to(device), data["y_test"].to(device))
save_student(sm.output.model, model.cpu(), summary=summary)
pd.DataFrame(history).to_csv(sm.output.history, sep="\t", index=False)
with open(sm.output.metrics, "w") as f:
    json.dump(summary, f, indent=2)
