"""perturbation.tsv, and from it the stability radii (blow-up, approximation-lost) and the
crossing points (method §3)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from curse_memory.analysis import crossing_table, radius_table
from curse_memory.tables import read_table

sm = snakemake
table = pd.concat([read_table(p) for p in sm.input.tables], ignore_index=True)
radius_table(table).to_csv(sm.output.radius, sep="\t", index=False)
crossing_table(table).to_csv(sm.output.crossings, sep="\t", index=False)
table.drop(columns="tau").to_csv(sm.output.perturbation, sep="\t", index=False)
print(f"{len(table)} rows from {len(sm.input.tables)} students", file=sys.stderr)
