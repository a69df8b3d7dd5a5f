"""The Snakemake workflow end to end: DAG sizes, the tiny config, report, figure rebuilds,
determinism and resume after an interruption (config validation: tests/test_config.py)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import effective_config
from workflow_copy import WORKFLOW
from workflow_copy import copy_workflow as copy_workflow_names

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = "tests/config/tiny.yaml"
COPIED = [*WORKFLOW, "Makefile", "requirements.txt"]  # make figures runs in the copy
TABLE_COLUMNS = {
    "training": ["target", "structure", "param", "activation", "width", "seed", "steps"]
    + ["train_loss", "val_loss", "test_loss", "min_eig", "monotone_ok", "wall_s"],
    "perturbation": ["target", "structure", "param", "activation", "width", "seed", "beta"]
    + ["error", "n_diverged"],
    "stability_radius": ["target", "structure", "param", "activation", "width", "seed"]
    + ["tau", "beta_star"],
    "memory": ["subject", "kind", "t", "memory"],
    "memory_fit": ["subject", "kind", "decay", "rate_exp", "rate_pol", "fit_exp", "fit_pol"]
    + ["target", "structure", "param", "activation", "width", "seed"],
    "claims": ["claim", "setting", "reading", "expected", "measured", "verdict"]
    + ["n_seeds", "df", "test", "p_adj"],
    "seed_halves": ["claim", "setting", "verdict_a", "verdict_b", "contradicts"],
    "crossings": ["width_narrow", "width", "beta_cross", "status"],
    "history": ["step", "train_loss", "val_loss", "lr", "min_eig"],
    "slopes": ["measure", "slope", "ci_low", "ci_high"],
}
TIMINGS = {"training": ["wall_s"]}  # columns that measure time, not results
# every test here calls snakemake in a subprocess
pytestmark = pytest.mark.workflow


def copy_workflow(dst: Path) -> Path:
    return copy_workflow_names(dst, COPIED)


def snakemake(cwd: Path, *args: str, timeout: int = 900, check: bool = True):
    """Run the workflow's snakemake in ``cwd``; targets go before the options."""
    proc = subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"CURSE_MEMORY_DEVICE": "cpu"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def read_table(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t")
    return table.drop(columns=TIMINGS.get(path.stem, []))


def load_config(path: Path) -> dict:
    """The config a run with ``--configfile path`` sees (an overlay over the default)."""
    return effective_config(path)


AXIS_FAMILIES = ("rnn", "ssm")  # the families with structure, parameterisation, activation


def kinds(config: dict, family: str) -> int:
    """Kinds of student of one family: structure x param x activation, or 1 ("none")."""
    s = config["students"]
    if family not in AXIS_FAMILIES:
        return 1
    return len(s["structures"]) * len(s["parameterisations"]) * len(s["activations"])


def families(config: dict) -> list[str]:
    return config["students"].get("families", ["rnn"])


def expected_students(config: dict) -> int:
    n = len(config["targets"]) * len(config["seeds"]) * len(config["students"]["widths"])
    return n * sum(kinds(config, f) for f in families(config))


def pack_size(config: dict, family: str = "rnn") -> int:
    """Students per pack: the product of the packed axes' lengths."""
    axes = {"seed": len(config["seeds"]), "target": len(config["targets"])}
    axes["param"] = len(config["students"]["parameterisations"])
    if family not in AXIS_FAMILIES:
        axes["param"] = 1
    pack_by = config.get("train", {}).get("pack_by", ["seed", "target", "param"])
    size = 1
    for axis in pack_by:
        size *= axes[axis]
    return size


def expected_packs(config: dict) -> int:
    n = len(config["targets"]) * len(config["seeds"]) * len(config["students"]["widths"])
    return sum(n * kinds(config, f) // pack_size(config, f) for f in families(config))


def expected_jobs(config: dict) -> int:
    """Job count of a full run, from the grid sizes."""
    n_targets, packs = len(config["targets"]), expected_packs(config)
    # train and perturbation per pack; memory per pack of every width (never packed)
    memory = packs // len(config["students"]["widths"])
    aggregates, plots = 4, 5 + n_targets  # + one perturbation figure per target
    synthesis = n_targets  # one job per target writes every seed's splits
    return synthesis + 2 * packs + memory + n_targets + aggregates + plots + 1


# ---------------------------------------------------------------------------- DAGs
@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("dag"))


@pytest.mark.parametrize(
    "configfile",
    ["config/config.yaml", "config/paper.yaml", "config/study.yaml", "config/families.yaml", TINY],
)
def test_dry_run_resolves_the_whole_grid(fresh_copy, configfile):
    proc = snakemake(fresh_copy, "-n", "--configfile", configfile, timeout=300)
    total = re.search(r"^total\s+(\d+)", proc.stdout, re.MULTILINE)
    assert total, proc.stdout[-2000:]
    assert int(total.group(1)) == expected_jobs(load_config(ROOT / configfile))


def test_plain_snakemake_uses_the_default_config_and_profile(fresh_copy):
    proc = snakemake(fresh_copy, "-n", timeout=300)
    assert "profiles/default" in proc.stdout + proc.stderr
    total = int(re.search(r"^total\s+(\d+)", proc.stdout, re.MULTILINE).group(1))
    assert total == expected_jobs(load_config(ROOT / "config/config.yaml")) == 49


# ---------------------------------------------------------------------------- tiny run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("tiny"))
    start = time.perf_counter()
    snakemake(work, "--configfile", TINY)
    print(f"tiny run: {time.perf_counter() - start:.1f} s")
    return work


@pytest.mark.slow
def test_tiny_run_writes_every_table_with_its_columns(tiny_run):
    config = load_config(ROOT / TINY)
    n_students = expected_students(config)
    n_betas = config["perturbation"]["n_betas"] + 1
    for name, columns in TABLE_COLUMNS.items():
        table = pd.read_csv(tiny_run / "results/tables" / f"{name}.tsv", sep="\t")
        assert set(columns) <= set(table.columns), (name, table.columns)
        assert len(table) > 0, name
    tables = tiny_run / "results/tables"
    assert len(pd.read_csv(tables / "training.tsv", sep="\t")) == n_students
    assert len(pd.read_csv(tables / "perturbation.tsv", sep="\t")) == n_students * n_betas
    assert len(pd.read_csv(tables / "stability_radius.tsv", sep="\t")) == n_students
    fits = pd.read_csv(tables / "memory_fit.tsv", sep="\t")
    assert (fits["kind"] == "student").sum() == n_students
    assert (fits["kind"] == "target").sum() == len(config["targets"])
    claims = pd.read_csv(tables / "claims.tsv", sep="\t")
    assert set(claims["verdict"]) <= {"holds", "fails", "inconclusive"} and len(claims) > 3
    tested = claims[claims["test"].str.startswith("t across seeds")]
    assert len(tested) and (tested["test"].str.contains("Holm over")).all()
    # a row on one trend rests on the seeds of the config, with n_seeds - 1 degrees of
    # freedom (a family cell's row combines two trends and names both in its test)
    single = tested[tested["estimate"].notna()]
    assert len(single) and set(single["n_seeds"]) <= set(range(1, len(config["seeds"]) + 1))
    assert (single["df"] == single["n_seeds"] - 1).all()
    # the targets' memory decays as their kernels do (a deterministic row per target)
    targets = claims[claims["setting"].str.startswith("target ")].set_index("setting")
    assert targets.loc["target pol", "measured"].startswith("polynomial")
    assert set(targets["verdict"]) == {"holds"}
    for name in (
        "target_memory",
        "stability_radius",
        "student_memory",
        "training",
        "perturbation_pol",
    ):
        for ext in ("png", "pdf"):
            assert (tiny_run / "results/figures" / f"{name}.{ext}").stat().st_size > 1000
    assert list((tiny_run / "logs/train_students").rglob("*.log"))
    assert list((tiny_run / "benchmarks/train_students").rglob("*.tsv"))


TINY_FAMILIES = "tests/config/tiny_families.yaml"


@pytest.mark.slow
def test_every_family_trains_perturbs_and_has_memory_functions(tmp_path):
    """A tiny run of rnn, ssm, lru, lstm and gru: their paths and tables say "none" for the
    axes that do not apply, lstm and gru have no eigenvalue counts, lru records |lambda|,
    and the families table has one row per kind of student."""
    work = copy_workflow(tmp_path)
    config = load_config(ROOT / TINY_FAMILIES)
    snakemake(work, "--configfile", TINY_FAMILIES)
    assert (work / "results/students/pol/lstm/none/none/none/w4/s1/model.pt").exists()
    assert (work / "results/students/pol/ssm/diagonal/direct/tanh/w2/s1/model.pt").exists()
    tables = work / "results/tables"
    training = pd.read_csv(tables / "training.tsv", sep="\t", keep_default_na=False)
    assert len(training) == expected_students(config) == 10
    fixed = training[~training["family"].isin(AXIS_FAMILIES)]
    assert set(fixed["family"]) == {"lru", "lstm", "gru"}
    assert (fixed[["structure", "param", "activation"]] == "none").all().all()
    pert = pd.read_csv(tables / "perturbation.tsv", sep="\t")
    gated = pert[pert["family"].isin(["lstm", "gru"])]
    assert gated["n_eig_negative"].isna().all() and gated["max_abs_lambda"].isna().all()
    lru = pert[pert["family"] == "lru"]
    assert (lru["n_eig_negative"] == 0).all() and (lru["max_abs_lambda"] < 1).all()
    assert set(pert["norm"]) == {"inf", "l2"}
    fits = pd.read_csv(tables / "memory_fit.tsv", sep="\t")
    assert set(fits.loc[fits["kind"] == "student", "family"]) == set(families(config))
    table = pd.read_csv(tables / "families.tsv", sep="\t", keep_default_na=False)
    models = {"diagonal RNN", "state-space model", "linear recurrent unit", "LSTM", "GRU"}
    assert set(table["model"]) == models
    assert set(table["pol_verdict"]) <= {"stable", "unstable", "inconclusive"}
    theory = dict(zip(table["model"], table["pol_theory"], strict=True))
    assert theory["linear recurrent unit"] == "stable" and theory["LSTM"] == ""
    claims = pd.read_csv(tables / "claims.tsv", sep="\t", dtype=str, keep_default_na=False)
    # rnn, ssm and lru have a theory cell to test; lstm and gru are measured only
    assert (claims["claim"] == "F").sum() == 3
    assert (work / "results/figures/perturbation_pol.png").stat().st_size > 1000


@pytest.mark.slow
def test_report_builds(tiny_run):
    snakemake(tiny_run, "--configfile", TINY, "--report", "results/report.html")
    html = (tiny_run / "results/report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "Claims" in html


@pytest.mark.slow
def test_figure_rebuild_is_byte_identical_and_trains_nothing(tiny_run):
    figures = sorted((tiny_run / "results/figures").iterdir())
    before = {p.name: p.read_bytes() for p in figures}
    models = {p: p.stat().st_mtime_ns for p in (tiny_run / "results/students").rglob("model.pt")}
    shutil.rmtree(tiny_run / "results/figures")
    proc = subprocess.run(
        ["make", "figures", f"VENV={BIN.parent}", f"CONFIG={TINY}"],
        cwd=tiny_run,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = {p.name: p.read_bytes() for p in sorted((tiny_run / "results/figures").iterdir())}
    assert after.keys() == before.keys()
    assert [n for n in before if before[n] != after[n]] == []
    assert {p: p.stat().st_mtime_ns for p in models} == models
    assert not re.search(r"^\s*(local)?rule train_students:", proc.stdout + proc.stderr, re.M)


@pytest.mark.slow
def test_two_runs_give_identical_tables(tiny_run, tmp_path):
    other = copy_workflow(tmp_path / "again")
    snakemake(other, "results/tables/claims.tsv", "--configfile", TINY)
    for path in sorted((other / "results/tables").glob("*.tsv")):
        a, b = read_table(path), read_table(tiny_run / "results/tables" / path.name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=path.name)
        if path.stem not in TIMINGS:
            assert path.read_bytes() == (tiny_run / "results/tables" / path.name).read_bytes()


def planned_outputs(work: Path) -> str:
    """The outputs a dry run would (re)create: Snakemake's own view of what is unfinished."""
    plan = snakemake(work, "-n", "--configfile", TINY).stdout
    return "\n".join(re.findall(r"^\s*output: (.*)$", plan, re.MULTILINE))


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_jobs(tmp_path):
    work = copy_workflow(tmp_path / "resume")
    log = tmp_path / "first.log"
    cmd = [str(BIN / "snakemake"), "--configfile", TINY, "--cores", "1"]
    with open(log, "w") as out:
        # a shell's background job inherits SIGINT ignored, and Python keeps it so: give
        # the run the default handler back, so that it can be interrupted like at a terminal
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        done = re.compile(r"Finished jobid: \d+ \(Rule: train_students\)")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if done.search(log.read_text()):  # the first pack (of 2: widths 4 and 8)
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        assert done.search(log.read_text()), "no training job finished within 300 s"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            pytest.fail("snakemake did not stop within 120 s of SIGINT")
    assert proc.returncode != 0 and not (work / "results/tables/claims.tsv").exists()

    snakemake(work, "--unlock", "--configfile", TINY, check=False)
    plan = planned_outputs(work)
    models = sorted((work / "results/students").rglob("model.pt"))
    finished = {p: p.stat().st_mtime_ns for p in models if str(p.relative_to(work)) not in plan}
    assert len(finished) >= 2, plan[-3000:]

    rerun = snakemake(work, "--configfile", TINY)
    assert (work / "results/tables/claims.tsv").exists()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not retrained
    trained = re.findall(r"rule train_students:", rerun.stdout + rerun.stderr)
    config = load_config(ROOT / TINY)
    assert len(trained) == expected_packs(config) - len(finished) // pack_size(config)
