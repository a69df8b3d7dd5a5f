"""Train one pack of students as one batched model; with width monotonicity, each until
it beats its own narrower student (method §2)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import json
from pathlib import Path

import pandas as pd
import torch

from curse_memory.model import StudentConfig, StudentRNN, read_checkpoint, save_student
from curse_memory.training import TrainConfig, evaluate, resolve_device, train_pack

sm = snakemake
torch.set_num_threads(sm.threads)
members = sm.params.members
configs = [StudentConfig(**sm.params.student, parameterisation=m["param"]) for m in members]
names = ["/".join(f"{k}={m[k]}" for k in ("target", "family", "param", "seed")) for m in members]
targets = [None] * len(members)
for i, path in enumerate(sm.input.previous):  # each member's narrower student (a DAG edge)
    with open(path) as f:
        targets[i] = sm.params.monotone_factor * json.load(f)["val_loss"]
datas = [read_checkpoint(path) for path in sm.input.targets]
device = resolve_device()
seeds = [int(m["seed"]) for m in members]
# paired design: every parameterisation of a (width, seed) starts from the same draw
models = [
    StudentRNN(c, generator=torch.Generator().manual_seed(1000 * s + c.width))
    for c, s in zip(configs, seeds, strict=True)
]
print(f"{sm.wildcards}: {len(models)} students on {device}: {names}", file=sys.stderr)
# the pack's checkpoint (train.checkpoint_every): results/checkpoints/<rule>/<pack>.pt, next
# to no declared output, so that Snakemake, which deletes the outputs of a failed or killed
# job, keeps it for the rerun to resume from; train_pack removes it once the pack is done
log = Path(sm.log[0]).with_suffix(".pt")
checkpoint = Path("results/checkpoints", *log.parts[1:])
every = sm.config["train"].get("checkpoint_every", 0)

results = train_pack(
    models,
    datas,
    TrainConfig(**sm.params.train, checkpoint_every=every),
    [torch.Generator().manual_seed(s) for s in seeds],
    target_losses=targets,
    device=device,
    names=names,
    checkpoint=checkpoint,
)
for i, (model, history, summary) in enumerate(results):
    data = datas[i]
    summary["test_loss"] = evaluate(model, data["x_test"].to(device), data["y_test"].to(device))
    save_student(sm.output.models[i], model.cpu(), summary=summary)
    pd.DataFrame(history).to_csv(sm.output.histories[i], sep="\t", index=False)
    with open(sm.output.metrics[i], "w") as f:
        json.dump(summary, f, indent=2)
