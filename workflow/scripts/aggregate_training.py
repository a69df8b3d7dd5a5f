"""training.tsv (one row per student) and history.tsv (its validation passes)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import json

import pandas as pd

sm = snakemake
columns = ["steps", "train_loss", "val_loss", "test_loss", "min_eig", "max_eig"]
columns += ["monotone_ok", "stop_reason", "wall_s"]
rows, histories = [], []
for keys, metrics, history in zip(
    sm.params.students, sm.input.metrics, sm.input.histories, strict=True
):
    with open(metrics) as f:
        summary = json.load(f)
    rows.append(keys | {c: summary[c] for c in columns})
    histories.append(pd.read_csv(history, sep="\t").assign(**keys))

pd.DataFrame(rows).to_csv(sm.output.training, sep="\t", index=False)
history = pd.concat(histories, ignore_index=True)
front = list(sm.params.students[0])
history[front + [c for c in history if c not in front]].to_csv(
    sm.output.history, sep="\t", index=False
)
print(f"{len(rows)} students", file=sys.stderr)
