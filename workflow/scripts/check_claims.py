"""claims.tsv: the paper's claims checked in numbers, and slopes.tsv behind them."""

import sys

sys.stderr = open(snakemake.log[0], "w")


from curse_memory.analysis import claims_table
from curse_memory.tables import read_table

sm = snakemake
read = {name: read_table(path) for name, path in sm.input.items()}
betas = read["perturbation"]["beta"]
claims, slopes = claims_table(
    read["training"],
    read["radius"],
    read["crossings"],
    read["memory_fit"],
    specs=sm.params.targets,
    thresholds=sm.params.thresholds,
    beta_max=float(betas.max()),
    beta_min=float(betas[betas > 0].min()),  # the grid's smallest positive beta
)
claims.to_csv(sm.output.claims, sep="\t", index=False)
slopes.to_csv(sm.output.slopes, sep="\t", index=False)
print(claims.to_string(index=False), file=sys.stderr)
