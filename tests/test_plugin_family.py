"""examples/plugin_family: a family defined outside the repository, named in a config as
package.module:Name, runs through the tiny DAG to the claims table (its jobs import it
again, through the PYTHONPATH that Snakemake passes on to them)."""

from __future__ import annotations

import os
import subprocess

import pandas as pd
import pytest
from conftest import BIN, ROOT

OVERLAYS = [ROOT / "tests/config/tiny.yaml", ROOT / "examples/plugin_family/config.yaml"]


def run(work, *args, pythonpath=True):
    env = os.environ | {"CURSE_MEMORY_DEVICE": "cpu"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "examples"), env.get("PYTHONPATH", "")])
    else:
        env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
        + ["--configfile", *map(str, OVERLAYS), "--cores", "2", *args],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
    )


@pytest.mark.workflow
def test_a_plugin_off_the_path_fails_validation_with_its_key(tmp_path):
    proc = run(tmp_path, "-n", pythonpath=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config students.families" in out and "not importable" in out


@pytest.mark.slow
@pytest.mark.workflow
def test_the_example_plugin_runs_through_the_tiny_dag_to_the_claims_table(tmp_path):
    proc = run(tmp_path, "results/tables/claims.tsv")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    models = sorted((tmp_path / "results/students/pol/glr/none/none/none").glob("w*/s*/model.pt"))
    assert len(models) == 4  # widths 4, 8 x seeds 1, 2, under the plug-in's name
    tables = tmp_path / "results/tables"
    training = pd.read_csv(tables / "training.tsv", sep="\t")
    assert set(training["family"]) == {"glr"}
    perturbation = pd.read_csv(tables / "perturbation.tsv", sep="\t")
    assert set(perturbation["family"]) == {"glr"} and perturbation["error"].notna().all()
    claims = pd.read_csv(tables / "claims.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert len(claims) > 0
