# The workflow's entry point is workflow/Snakefile (the layout of the Snakemake Workflow
# Catalog); this file keeps `snakemake` run from the repository root working as before.
# An `include:` does not pass the included file's default target (rule all) on, so the
# include is written out with the option that does.
workflow.include("workflow/Snakefile", overwrite_default_target=True)
