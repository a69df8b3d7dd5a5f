# The two quick-start commands are `make run` and `make test`; both build the
# pinned environment in .venv first (again whenever requirements.txt changes).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SNAKEMAKE := $(BIN)/snakemake
CONFIG ?= config/config.yaml
CORES ?= all

.PHONY: setup run test test-fast lint bench figures docs-figures study paper dryrun clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)  ## create or refresh .venv with the pinned dependencies

run: setup  ## run the default pipeline, build the report, print the claims table
	$(SNAKEMAKE) --configfile $(CONFIG) --cores $(CORES)
	$(SNAKEMAKE) --configfile $(CONFIG) --cores $(CORES) --report results/report.html
	@echo; echo "== claims (results/tables/claims.tsv) =="; column -t -s $$'\t' results/tables/claims.tsv

test: setup lint  ## lint, then the full test suite (unit, workflow, SLURM)
	$(BIN)/pytest

test-fast: setup  ## unit tests of the shared module only
	$(BIN)/pytest tests/test_curse_memory.py

lint: setup  ## formatting and lint checks
	$(BIN)/ruff check workflow tests
	$(BIN)/ruff format --check workflow tests
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint --configfile $(CONFIG)

bench: setup  ## speed benchmark, ratios side by side (results/benchmarks/bench.tsv)
	PYTHONPATH=workflow/scripts $(BIN)/python workflow/scripts/benchmark.py

figures: setup  ## re-render every figure and the report from the tables alone
	$(SNAKEMAKE) --configfile $(CONFIG) --cores $(CORES) figures
	$(SNAKEMAKE) --configfile $(CONFIG) --cores $(CORES) --report results/report.html

study: CONFIG = config/study.yaml
study: run  ## the sensitivity study (about two hours on 2 cores)

paper: CONFIG = config/paper.yaml
paper: run  ## the paper's full grid (for a GPU or a cluster)

dryrun: setup  ## resolve the DAG of the default config without running it
	$(SNAKEMAKE) --configfile $(CONFIG) -n --quiet rules

clean:  ## remove results, logs and benchmarks (not the environment)
	rm -rf results/*/ results/report.html logs benchmarks .snakemake
