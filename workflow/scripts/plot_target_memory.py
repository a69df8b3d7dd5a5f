"""Figure 1 (method §5): memory functions of the targets, log-log and semilog-y.

Input: memory (memory.tsv). Output: png, pdf.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821, SIM115

from curse_memory.plotting import read_table, save_figure, target_memory  # noqa: E402

smk = snakemake  # noqa: F821
fig = target_memory(read_table(smk.input.memory))
save_figure(fig, smk.output.png, smk.output.pdf)
