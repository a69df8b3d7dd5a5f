"""Slopes of log beta vs log m per setting (slopes.tsv): the sensitivity figure.

Inputs: slopes (slopes.tsv). Output: png, pdf.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")

from curse_memory.plotting import read_table, save_figure, sensitivity

save_figure(
    sensitivity(read_table(snakemake.input.slopes)), snakemake.output.png, snakemake.output.pdf
)
