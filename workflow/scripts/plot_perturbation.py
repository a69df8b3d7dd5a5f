"""Figure 2 (method §5): E_m(beta) vs beta for one target in the paper's style: one panel per
parameterisation / activation, one curve per width (median and min-max over seeds), the
crossing points of successive widths and the "∞" band of divergent errors.

Inputs: perturbation (perturbation.tsv), crossings (crossings.tsv); wildcards.target.
Optional params: norm ("inf" or "l2"; default "inf" when present). Output: png, pdf.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821, SIM115

from curse_memory.plotting import perturbation, read_table, save_figure  # noqa: E402

smk = snakemake  # noqa: F821
fig = perturbation(
    read_table(smk.input.perturbation),
    read_table(smk.input.crossings),
    smk.wildcards.target,
    norm=getattr(smk.params, "norm", None),
)
save_figure(fig, smk.output.png, smk.output.pdf)
