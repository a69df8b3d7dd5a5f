"""Figure 5 (method §5): validation-loss curves and final test loss against width.

Inputs: history (history.tsv), training (training.tsv). Output: png, pdf.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821, SIM115

from curse_memory.plotting import read_table, save_figure, training  # noqa: E402

smk = snakemake  # noqa: F821
fig = training(read_table(smk.input.history), read_table(smk.input.training))
save_figure(fig, smk.output.png, smk.output.pdf)
