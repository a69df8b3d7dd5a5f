# The two quick-start commands are `make run` and `make test`; both build the
# pinned environment in .venv first (again whenever requirements.txt changes; make test
# adds the tools of requirements-dev.txt).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# uv installs the pinned wheels (14 s against pip's 51 s for requirements.txt on this
# machine: it downloads and unpacks in parallel). uv does not read pip's configuration, so
# a wheel directory that pip is pointed at (PIP_FIND_LINKS, or find-links in pip's
# configuration) is passed on to it.
UV_VERSION := 0.13.9
UV = UV_FIND_LINKS="$${UV_FIND_LINKS:-$(PIP_WHEELS)}" $(BIN)/uv pip install --quiet \
  --python $(BIN)/python
PIP_WHEELS = $${PIP_FIND_LINKS:-$$(python3 -m pip config get global.find-links 2>/dev/null)}
SNAKEMAKE := $(BIN)/snakemake
WARM = env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=workflow/scripts $(BIN)/python
CONFIG ?= config/config.yaml
# working directory of a run: results/, logs/ and benchmarks/ are created inside it, so
# the study and the paper grid never overwrite the default run
WORKDIR ?= .
CORES ?= all
SM = $(abspath $(SNAKEMAKE)) --directory $(WORKDIR) --configfile $(abspath $(CONFIG)) --cores $(CORES)
PLOT_RULES := plot_target_memory plot_perturbation plot_stability_radius plot_student_memory
PLOT_RULES += plot_training plot_sensitivity
# the tests that run in process: no snakemake subprocess, no end-to-end run, no SLURM
# (markers registered in pyproject.toml)
FAST_TESTS := -m "not slow and not slurm and not workflow"
# what the default run (WORKDIR = .) writes; the study's, the paper's and any other
# results/<name> working directories are left alone
DEFAULT_OUTPUTS := results/targets results/students results/perturbation results/memory
DEFAULT_OUTPUTS += results/tables results/figures results/report.html results/checkpoints
DEFAULT_OUTPUTS += logs benchmarks .snakemake

.PHONY: setup setup-dev run test test-fast lint bench bench-ascent figures docs docs-figures study paper
.PHONY: nonlinear
.PHONY: reference-init families filter verdicts dryrun clean clean-all help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(UV) -r requirements.txt
	@# byte-compile what the jobs import, by importing it once with bytecode writing on
	@# (even where PYTHONDONTWRITEBYTECODE is set), in two processes: 17 s against 38 s for
	@# compiling all of site-packages on 2 cores (most of torch is never imported here);
	@# the first also compiles the fused kernels into numba's cache (20 s once; a job then
	@# loads them in 0.5 s, where each fresh clone's first jobs would compile them)
	$(WARM) -c "import torch, curse_memory.model, curse_memory.training, \
	  curse_memory.perturbation, curse_memory.memory, curse_memory.targets, \
	  curse_memory.kernels as k; k.warm()" & \
	$(WARM) -c "import matplotlib; matplotlib.use('Agg'); import curse_memory.plotting, \
	  curse_memory.analysis, curse_memory.tables, snakemake.cli, snakemake.script, \
	  snakemake.scheduling.milp, snakemake.report.html_reporter, jsonschema"; wait $$!
	touch $(STAMP)

# the test and lint tools, on top (make run does not download them)
$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(UV) -r requirements-dev.txt
	touch $(DEV_STAMP)

setup: $(STAMP)  ## create or refresh .venv with the pinned dependencies

setup-dev: $(DEV_STAMP)  ## setup, plus the pinned test and lint tools

run: setup  ## run the default pipeline, build the report, print the claims table
	$(SM) --report results/report.html --report-after-run
	@echo; echo "== claims ($(WORKDIR)/results/tables/claims.tsv) =="
	@$(BIN)/python -c "import sys, pandas as pd; \
	  t = pd.read_csv(sys.argv[1], sep='\t', dtype=str, keep_default_na=False); \
	  print(t.to_string(index=False, max_colwidth=90))" $(WORKDIR)/results/tables/claims.tsv

test: setup-dev lint  ## lint, then the full test suite (unit, workflow, SLURM)
	$(BIN)/pytest

test-fast: setup-dev  ## the in-process tests (no snakemake subprocess, no SLURM; under a minute)
	$(BIN)/pytest $(FAST_TESTS)

lint: setup-dev  ## formatting and lint checks
	$(BIN)/ruff check workflow tests bench scripts
	$(BIN)/ruff format --check workflow tests bench scripts
	$(BIN)/snakefmt --check Snakefile workflow/Snakefile workflow/rules
	$(SNAKEMAKE) --lint --configfile $(CONFIG)

bench: setup  ## speed benchmark, ratios side by side (results/benchmarks/bench.tsv)
	PYTHONPATH=workflow/scripts $(BIN)/python bench/benchmark.py

bench-ascent: setup  ## E_m(beta) of ascent over sampling on the verdicts run's seed-1 students
	PYTHONPATH=workflow/scripts $(BIN)/python bench/ascent.py --root results/verdicts/results

figures: setup  ## re-render every figure and the report from the tables alone
	$(SM) figures --allowed-rules $(PLOT_RULES) figures --forcerun $(PLOT_RULES)
	$(SM) --report results/report.html

study: CONFIG = config/study.yaml
study: WORKDIR = results/study
study: run  ## the sensitivity study in results/study (about 6 minutes on 2 cores)

paper: CONFIG = config/paper.yaml
paper: WORKDIR = results/paper
paper: run  ## the paper's full grid in results/paper (for a GPU or a cluster)

nonlinear: CONFIG = config/nonlinear.yaml
nonlinear: WORKDIR = results/nonlinear
nonlinear: run  ## the nonlinear-target study (about 2 minutes on 2 cores)

reference-init: CONFIG = config/reference_init.yaml
reference-init: WORKDIR = results/reference_init
reference-init: run  ## the headline grid with the reference code's initialisation

families: CONFIG = config/families.yaml
families: WORKDIR = results/families
families: run  ## model families: rnn, ssm, lru, lstm, gru (under an hour on 2 cores)

verdicts: CONFIG = config/verdicts.yaml
verdicts: WORKDIR = results/verdicts
verdicts: run  ## the default grid with 10 seeds and both norms (trends on 9 df; ~40 min on 2 cores)

filter: CONFIG = config/filter.yaml
filter: WORKDIR = results/filter
filter: run  ## the filter: RNN and Transformer teachers against exp and pol (800 students)

dryrun: setup  ## resolve the DAG of a config without running it
	$(SM) -n --quiet rules

docs: setup  ## regenerate the docs' generated blocks from docs/figures, docs/bench and the schema
	$(BIN)/python scripts/config_docs.py
	$(BIN)/python scripts/results_docs.py

# the figures of the other runs that docs/results.md shows, as <run>_<figure>.png
DOCS_FIGURES := nonlinear:perturbation_readout_pol nonlinear:perturbation_teacher
DOCS_FIGURES += nonlinear:stability_radius nonlinear:sensitivity
DOCS_FIGURES += reference_init:perturbation_exp reference_init:perturbation_pol
DOCS_FIGURES += study:sensitivity study:stability_radius
DOCS_FIGURES += families:perturbation_exp families:perturbation_pol families:stability_radius
DOCS_FIGURES += verdicts:sensitivity verdicts:perturbation_pol
DOCS_FIGURES += filter:perturbation_teacher filter:perturbation_transformer filter:stability_radius
DOCS_FIGURES += filter:target_memory

docs-figures:  ## copy the runs' figures and tables that the docs show to docs/figures (then make docs)
	mkdir -p docs/figures
	cp results/figures/*.png docs/figures/
	cp results/tables/claims.tsv docs/figures/claims.tsv
	cp results/tables/seed_halves.tsv docs/figures/seed_halves.tsv
	for item in $(DOCS_FIGURES); do \
	  run=$${item%%:*}; name=$${item#*:}; dir=results/$$run/results; \
	  if [ -f $$dir/figures/$$name.png ]; then \
	    cp $$dir/figures/$$name.png docs/figures/$${run}_$$name.png; \
	    cp $$dir/tables/claims.tsv docs/figures/$${run}_claims.tsv; \
	    cp $$dir/tables/seed_halves.tsv docs/figures/$${run}_seed_halves.tsv; \
	    if [ -f $$dir/tables/families.tsv ]; then \
	      cp $$dir/tables/families.tsv docs/figures/$${run}_families.tsv; \
	    fi; \
	  fi; \
	done

clean:  ## remove the default run's results, logs and benchmarks (not results/<name> runs)
	rm -rf $(DEFAULT_OUTPUTS)

clean-all: clean  ## remove everything under results/ (study, paper, ...) but its README
	find results -mindepth 1 -maxdepth 1 ! -name 'README*' ! -name '.gitkeep' \
	  -exec rm -rf {} +
