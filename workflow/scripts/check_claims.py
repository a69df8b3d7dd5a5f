"""claims.tsv: the paper's claims checked in numbers (seed-level trends, three verdicts),
slopes.tsv behind them, families.tsv: the reference's table of model families rebuilt
from them (method §6), and seed_halves.tsv: the claims of each half of the seeds side by
side, with the rows where one half holds and the other fails."""

import sys

sys.stderr = open(snakemake.log[0], "w")


from curse_memory.analysis import Grid, evaluate, seed_halves
from curse_memory.tables import read_table

sm = snakemake
tables = {name: read_table(path) for name, path in sm.input.items()}
betas = tables["perturbation"]["beta"]
thresholds = sm.params.thresholds
settings = dict(
    specs=sm.params.targets,
    thresholds=thresholds,
    grid=Grid(
        beta_min=float(betas[betas > 0].min()),  # the grid's smallest positive beta
        beta_max=float(betas.max()),
        beta0=float(thresholds["beta0"]),
    ),
    rate_floor=sm.params.rate_floor,
)
result = evaluate(**tables, **settings)
result.claims.to_csv(sm.output.claims, sep="\t", index=False)
result.slopes.to_csv(sm.output.slopes, sep="\t", index=False)
result.families.to_csv(sm.output.families, sep="\t", index=False)
halves = seed_halves(tables, settings)
halves.to_csv(sm.output.halves, sep="\t", index=False)
print(result.claims.to_string(index=False), file=sys.stderr)
print(f"seed halves: {int(halves['contradicts'].sum())} contradicting rows", file=sys.stderr)
