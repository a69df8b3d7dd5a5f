"""claims.tsv: the paper's claims checked in numbers, slopes.tsv behind them, and
families.tsv: the reference's table of model families rebuilt from them (method §6)."""

import sys

sys.stderr = open(snakemake.log[0], "w")


from curse_memory.analysis import claims_table, context, families_table, family_cells
from curse_memory.tables import read_table

sm = snakemake
read = {name: read_table(path) for name, path in sm.input.items()}
betas = read["perturbation"]["beta"]
inputs = (read["training"], read["radius"], read["crossings"], read["memory_fit"])
settings = dict(
    specs=sm.params.targets,
    thresholds=sm.params.thresholds,
    beta_max=float(betas.max()),
    beta_min=float(betas[betas > 0].min()),  # the grid's smallest positive beta
)
claims, slopes = claims_table(*inputs, **settings)
families = families_table(claims, family_cells(context(*inputs, **settings)[0]))
claims.to_csv(sm.output.claims, sep="\t", index=False)
slopes.to_csv(sm.output.slopes, sep="\t", index=False)
families.to_csv(sm.output.families, sep="\t", index=False)
print(claims.to_string(index=False), file=sys.stderr)
