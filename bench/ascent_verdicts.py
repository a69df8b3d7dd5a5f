"""Does projected gradient ascent change a verdict? E_m(beta0) sampled vs ascended (method §3).

Run as ``PYTHONPATH=workflow/scripts python bench/ascent_verdicts.py [--root RUN/results]``
on a finished run (read only; default the verdicts run). For every student of the run and
every norm of its perturbation table, at beta0' (the largest grid beta <= claims.beta0, the
beta of the claims' E_m(beta0) reading) it computes, with the workflow's own code
(``perturbation_sweep``, the student in its trained precision, the test split):

- the sampled E: the max over the R draws, seeded by the student's seed exactly as
  ``evaluate_perturbation.py`` seeds them (a fresh generator per norm; the directions are
  drawn once, so they do not depend on which betas are evaluated). It must equal the run's
  ``error_max`` at beta0' (asserted);
- the ascended E: ``method="ascent"`` from the same draws (each draw keeps the larger of its
  sampled and ascended error).

Then the claims are recomputed (``analysis.evaluate`` with check_claims.py's settings) with
the perturbation table's monotone envelope ``error`` at beta0' -- and only there -- replaced by
max(envelope, ascended E), and compared row by row with the run's claims.tsv (the first
norm); the same for every other norm on a copy of the tables holding only that norm, sampled
against ascended. The radii and crossings are left as the run measured them (sampled): only
the E_m(beta0) reading moves, although the Holm correction over the table can move others.

Writes ``--out`` (per kind of student, width and norm: the median, min and max over seeds of
the ascended/sampled ratio at beta0') and ``--changes`` (the claims rows whose verdict
differs, with the estimates before and after, per norm), each with a ``# measured`` comment
line; ``--students`` keeps every student's two values, and ``--from-students`` reads them
back instead of computing them. Progress goes to stderr.

Measured (the verdicts run: 600 float32 students, 10 seeds, both norms, beta0' = 0.0579,
10 draws, 20 steps of 0.1 beta; one thread): 0.35 s per student for both norms (3.5 min in
all, plus ~12 s of kernel compilation). Median over kinds of the per-kind median
ascended/sampled ratio at m = 2 / 4 / 6 / 8 / 14: inf 1.9 / 3.9 / 6.9 / 10 / 19, l2 3.0 /
4.3 / 7.0 / 11 / 14 (pol direct linear l2 up to ~1000x). 13 of 76 verdicts change on the
claims' inf norm, all E_m(beta0) rows: claim 1's six exp kinds (holds or inconclusive ->
fails: the ascended E grows with m, slope 0.6-1.3), 2c pol direct hardtanh and tanh
(fails -> inconclusive) and three pol - exp contrasts (inconclusive -> fails), claim 3's
pol softplus hardtanh and tanh (holds -> fails); on l2, 4 (claim 1 exp linear direct and
softplus holds -> fails, 2c pol direct hardtanh fails -> inconclusive, 3 pol softplus tanh
holds -> inconclusive). 60 steps (11 min) raise the ascended E by <= 9% (inf; median 0%)
and by a median 4-6% (l2), change the same rows, and one more on l2 (2c pol direct tanh
error fails -> inconclusive).
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "workflow" / "scripts"))  # PYTHONPATH first

from curse_memory.analysis import MODEL, Grid, evaluate  # noqa: E402
from curse_memory.checks import merge_config  # noqa: E402
from curse_memory.tables import read_table  # noqa: E402

TABLES = {  # evaluate's argument -> the run's table
    "training": "training",
    "radius": "stability_radius",
    "crossings": "crossings",
    "perturbation": "perturbation",
    "memory_fit": "memory_fit",
}
ROW = ["claim", "setting", "reading", "measure"]  # one row of a claims table
KIND = ["target", "family", "structure", "param", "activation"]
RTOL = 1e-5  # sampled E against the run's error_max (same code, same float32 draws)


# ---------------------------------------------------------------------------- settings
def run_config(paths: list[str]) -> dict:
    """The merged config of a run (the first path the default, the rest overlays in order)
    with the schema's defaults of the perturbation's ascent settings filled in."""
    configs = [yaml.safe_load((ROOT / p).read_text()) or {} for p in paths]
    config = merge_config(configs[0], *configs[1:])
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["perturbation"]["properties"]
    for key in ("ascent_steps", "ascent_step"):
        config["perturbation"].setdefault(key, props[key]["default"])
    return config


def rate_floor(config: dict) -> float:
    """workflow/rules/common.smk's memory_rate_floor."""
    memory = config["memory"]
    return math.log(2) / (memory["horizon"] * config["data"]["dt"] - memory["fit_from"])


def beta0_prime(betas, beta0: float) -> float:
    """The largest grid beta <= beta0, with error_points' tolerance."""
    below = [float(b) for b in betas if float(b) <= beta0 * (1 + 1e-9)]
    if not below:
        raise ValueError(f"no grid beta <= beta0 = {beta0}")
    return max(below)


def claim_settings(config: dict, perturbation: pd.DataFrame) -> dict:
    """check_claims.py's settings of ``evaluate``."""
    betas = perturbation["beta"]
    thresholds = config["claims"]
    grid = Grid(
        beta_min=float(betas[betas > 0].min()),
        beta_max=float(betas.max()),
        beta0=float(thresholds["beta0"]),
    )
    return dict(
        specs=config["targets"], thresholds=thresholds, grid=grid, rate_floor=rate_floor(config)
    )


# ---------------------------------------------------------------------------- estimates
def student_estimates(
    model, data: dict, seed: int, norms, beta: float, repeats: int, steps: int, step_size: float
) -> list[dict]:
    """Sampled and ascended E at ``beta`` of one student, per norm (evaluate_perturbation's
    seeding: a fresh generator seeded by the student's seed for each norm)."""
    from curse_memory.perturbation import perturbation_sweep

    out = []
    for norm in norms:
        generator = torch.Generator().manual_seed(int(seed))
        (row,) = perturbation_sweep(
            model, data["x_test"], data["y_test"], [beta], repeats, norm, generator,
            method="ascent", steps=steps, step_size=step_size,
        )  # fmt: skip
        out.append({"norm": norm, "sampled": max(row["errors_sampled"]), "ascended": row["error"]})
    return out


def ratio(ascended: float, sampled: float) -> float:
    """ascended / sampled; 1 when both diverged."""
    if math.isinf(ascended) and math.isinf(sampled):
        return 1.0
    return ascended / sampled


def check_sampled(estimates: pd.DataFrame, perturbation: pd.DataFrame, beta: float) -> int:
    """Assert every sampled E equals the run's ``error_max`` at ``beta``; returns how many
    were checked."""
    at = perturbation[perturbation["beta"] == beta][[*MODEL, "norm", "error_max"]]
    merged = estimates.merge(at, on=[*MODEL, "norm"], how="left", validate="one_to_one")
    missing = merged["error_max"].isna()
    assert not missing.any(), f"no run row at beta {beta} for {merged[missing][MODEL].head()}"
    a, b = merged["sampled"].astype(float), merged["error_max"].astype(float)
    same = (a == b) | ((a - b).abs() <= RTOL * b.abs())
    assert same.all(), f"sampled E differs from the run's:\n{merged[~same].to_string()}"
    return len(merged)


def with_ascended(perturbation: pd.DataFrame, estimates: pd.DataFrame, beta: float):
    """A copy of ``perturbation`` whose envelope ``error`` at ``beta`` is max(envelope,
    ascended E) for every student and norm of ``estimates``; every other row, and every
    other column, as it was."""
    out = perturbation.copy()
    key = [*MODEL, "norm"]
    asc = estimates[[*key, "ascended"]]
    at = out["beta"] == beta
    merged = out.loc[at, key].merge(asc, on=key, how="left", validate="one_to_one")
    merged.index = out.index[at]
    found = merged["ascended"].notna()
    rows = merged.index[found]
    out.loc[rows, "error"] = (
        out.loc[rows, "error"]
        .astype(float)
        .combine(merged.loc[rows, "ascended"].astype(float), max)
    )
    return out


def only_norm(tables: dict, norm: str) -> dict:
    """The tables with only ``norm``'s rows where they have a norm."""
    return {k: v[v["norm"] == norm] if "norm" in v.columns else v for k, v in tables.items()}


def verdict_changes(before: pd.DataFrame, after: pd.DataFrame, norm: str) -> pd.DataFrame:
    """The rows of two claims tables whose verdict differs (matched by claim, setting,
    reading and measure), with both estimates, CIs and verdicts."""
    cols = ["estimate", "ci_low", "ci_high", "p_adj", "verdict"]
    merged = before[[*ROW, *cols]].merge(
        after[[*ROW, *cols]], on=ROW, how="outer", suffixes=("_before", "_after"), indicator=True
    )
    changed = (merged["verdict_before"] != merged["verdict_after"]) | (merged["_merge"] != "both")
    out = merged[changed].drop(columns="_merge").assign(norm=norm)
    return out[["norm", *ROW, *[f"{c}_{s}" for s in ("before", "after") for c in cols]]]


def ratio_table(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per kind of student, width and norm: the ascended/sampled ratio over seeds."""
    est = estimates.assign(
        ratio=[
            ratio(a, s) for a, s in zip(estimates["ascended"], estimates["sampled"], strict=True)
        ]
    )
    group = est.groupby([*KIND, "width", "norm"], sort=True)
    out = group["ratio"].agg(ratio_median="median", ratio_min="min", ratio_max="max")
    out["sampled_median"] = group["sampled"].median()
    out["ascended_median"] = group["ascended"].median()
    out["n_seeds"] = group["seed"].nunique()
    return out.reset_index()


# ---------------------------------------------------------------------------- main
def students_of(training: pd.DataFrame, seeds) -> pd.DataFrame:
    rows = training[[*MODEL]].drop_duplicates()
    if seeds:
        rows = rows[rows["seed"].isin(seeds)]
    return rows.sort_values(["seed", "target", "param", "activation", "width"])


def compute(args, config, students: pd.DataFrame, beta: float, norms) -> pd.DataFrame:
    from curse_memory.model import load_student, read_checkpoint

    torch.set_num_threads(args.threads)
    p = config["perturbation"]
    root, rows, data = Path(args.root), [], {}
    start = time.perf_counter()
    for i, s in enumerate(students.itertuples(index=False), 1):
        s = s._asdict()
        key = (s["target"], s["seed"])
        if key not in data:
            data[key] = read_checkpoint(root / "targets" / s["target"] / f"s{s['seed']}.pt")
        path = root / "students" / "/".join(
            [s["target"], s["family"], s["structure"], s["param"], s["activation"],
             f"w{s['width']}", f"s{s['seed']}", "model.pt"]
        )  # fmt: skip
        model, _ = load_student(path)
        model.requires_grad_(False)
        t0 = time.perf_counter()
        for e in student_estimates(
            model, data[key], s["seed"], norms, beta, p["repeats"], args.steps, args.step_size
        ):
            rows.append(s | e | {"steps": args.steps, "step_size": args.step_size})
        took, elapsed = time.perf_counter() - t0, time.perf_counter() - start
        line = " ".join(
            f"{r['norm']}={ratio(r['ascended'], r['sampled']):.3g}x" for r in rows[-len(norms) :]
        )
        left = elapsed / i * (len(students) - i) / 60
        print(
            f"[{i}/{len(students)}] {path.parent.relative_to(root / 'students')} {took:.1f}s "
            f"{line} (elapsed {elapsed / 60:.1f} min, left ~{left:.1f} min)",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, path: str, comment: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"# {comment}\n")
        table.to_csv(f, sep="\t", index=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="results/verdicts/results", help="a run's results/")
    parser.add_argument(
        "--config", nargs="+", default=["config/config.yaml", "config/verdicts.yaml"],
        help="the run's config: the default, then its overlays in order",
    )  # fmt: skip
    parser.add_argument("--out", default="docs/bench/ascent_verdicts.tsv", help="ratio table")
    parser.add_argument(
        "--changes", default="docs/bench/ascent_verdict_changes.tsv", help="changed verdicts"
    )
    parser.add_argument("--students", help="write every student's sampled and ascended E here")
    parser.add_argument("--from-students", help="read them from here instead of computing")
    parser.add_argument("--steps", type=int, help="ascent steps (default: the config's)")
    parser.add_argument("--step-size", type=float, help="ascent step / beta (default: config's)")
    parser.add_argument("--seeds", nargs="+", type=int, help="a subset of the seeds")
    parser.add_argument("--limit", type=int, help="only the first N students (timing)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    config = run_config(args.config)
    args.steps = args.steps or config["perturbation"]["ascent_steps"]
    args.step_size = args.step_size or config["perturbation"]["ascent_step"]
    run = Path(args.root)
    tables = {k: read_table(run / "tables" / f"{v}.tsv") for k, v in TABLES.items()}
    perturbation = tables["perturbation"]
    norms = list(dict.fromkeys(tables["radius"]["norm"]))  # the first is the claims' norm
    beta = beta0_prime(perturbation["beta"].unique(), float(config["claims"]["beta0"]))
    print(f"beta0' = {beta:.6g}, norms {norms}, {args.steps} steps of {args.step_size} beta",
          file=sys.stderr)  # fmt: skip

    if args.from_students:
        labels = dict.fromkeys([*KIND, "norm"], str)  # a norm "inf" is not a number
        estimates = pd.read_csv(args.from_students, sep="\t", comment="#", dtype=labels)
        for key in ("steps", "step_size"):  # as they were computed
            if key in estimates.columns:
                setattr(args, key, estimates[key].iloc[0].item())
    else:
        students = students_of(tables["training"], args.seeds)
        if args.limit:
            students = students.head(args.limit)
        estimates = compute(args, config, students, beta, norms)
        if args.students:
            write(estimates, args.students, f"beta0' = {beta}, {args.steps} steps")
    print(f"sampled E equals the run's error_max for {check_sampled(estimates, perturbation, beta)}"
          " (student, norm) pairs", file=sys.stderr)  # fmt: skip
    seeds = sorted(estimates["seed"].unique())
    n_students = len(estimates[MODEL].drop_duplicates())

    settings = claim_settings(config, perturbation)
    ascended = with_ascended(perturbation, estimates, beta)
    run_claims = read_table(run / "tables" / "claims.tsv")
    changes = []
    for i, norm in enumerate(norms):
        base = tables if i == 0 else only_norm(tables, norm)
        before = evaluate(**base, **settings).claims
        if i == 0:  # the run's own claims, recomputed: the same verdicts
            again = verdict_changes(run_claims, before, norm)
            assert again.empty, f"recomputed claims differ from the run's:\n{again.to_string()}"
        moved = ascended if i == 0 else ascended[ascended["norm"] == norm]
        after = evaluate(**(base | {"perturbation": moved}), **settings).claims
        changed = verdict_changes(before, after, norm)
        changes.append(changed)
        print(f"{norm}: {len(changed)} of {len(before)} verdicts change", file=sys.stderr)
    changes = pd.concat(changes, ignore_index=True)

    date = datetime.date.today().isoformat()
    about = (
        f"measured {date} by bench/ascent_verdicts.py on {args.root}: beta0' = {beta:.6g}, "
        f"{args.steps} ascent steps of {args.step_size} beta, float32 students, "
        f"{n_students} students, seeds {' '.join(map(str, seeds))}"
    )
    ratios = ratio_table(estimates)
    write(ratios.assign(beta=beta, steps=args.steps), args.out, about)
    write(changes, args.changes, about + "; E at beta0' only, radii and crossings sampled")
    summary = ratios.groupby(["norm", "width"])["ratio_median"].agg(["min", "median", "max"])
    print("median ascended/sampled E at beta0' per kind; over the kinds:")
    print(summary.to_string(float_format=lambda v: f"{v:.3g}"))
    if changes.empty:
        print("no verdict changes")
    else:
        cols = ["norm", "claim", "setting", "measure", "estimate_before", "estimate_after",
                "verdict_before", "verdict_after"]  # fmt: skip
        print(changes[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
