# Curse of memory in RNNs: targets -> students -> perturbation stability -> memory
# functions -> tables, figures and the claims table. See README.md and config/README.md.
from snakemake.utils import min_version

min_version("9.0")


# the default config; a --configfile (study, paper, tests) replaces it instead of being
# merged into it, also inside jobs submitted to a cluster
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/perturbation.smk"
include: "workflow/rules/memory.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
