"""Figure 3 (method §5): every stability measure against width: crossing beta, blow-up radius
beta* and (when the radius table has it) the approximation-lost radius beta_lost.

Inputs: radius (stability_radius.tsv), crossings (crossings.tsv), perturbation
(perturbation.tsv, for the grid maximum). Optional params: norm. Output: png, pdf.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821, SIM115

from curse_memory.plotting import read_table, save_figure, stability_radius  # noqa: E402

smk = snakemake  # noqa: F821
fig = stability_radius(
    read_table(smk.input.radius),
    read_table(smk.input.crossings),
    read_table(smk.input.perturbation),
    norm=getattr(smk.params, "norm", None),
)
save_figure(fig, smk.output.png, smk.output.pdf)
