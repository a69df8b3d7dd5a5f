"""memory.tsv (memory functions) and memory_fit.tsv (their tail fits), targets first."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from curse_memory.tables import read_table

sm = snakemake
for inputs, output in ((sm.input.memory, sm.output.memory), (sm.input.fits, sm.output.fit)):
    table = pd.concat([read_table(p) for p in inputs], ignore_index=True)
    table.to_csv(output, sep="\t", index=False)
    print(f"{output}: {len(table)} rows", file=sys.stderr)
