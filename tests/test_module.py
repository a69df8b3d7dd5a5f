"""The workflow used as a Snakemake module from a new directory (docs/deploy.md)."""

from __future__ import annotations

import os
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT, effective_config

TINY = "tests/config/tiny.yaml"


@pytest.mark.slow
@pytest.mark.workflow
def test_module_use_runs_the_tiny_config_to_the_claims_table(tmp_path):
    # a module's config is the one passed to it: the tiny overlay merged over the default
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(effective_config(TINY)))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        "module cm:\n"
        f'    snakefile:\n        "{ROOT}/workflow/Snakefile"\n'
        "    config:\n        config\n\n\n"
        "use rule * from cm\n"
    )
    proc = subprocess.run(
        [str(BIN / "snakemake"), "results/tables/claims.tsv", "--cores", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env=os.environ | {"CURSE_MEMORY_DEVICE": "cpu"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    claims = pd.read_csv(
        tmp_path / "results/tables/claims.tsv", sep="\t", dtype=str, keep_default_na=False
    )
    assert len(claims) > 0 and {"claim", "verdict"} <= set(claims.columns)
    assert set(claims["verdict"]) <= {"holds", "fails", "inconclusive"}
    # the run wrote into the new directory, never into the repository
    assert (tmp_path / "results/students/pol").is_dir()
