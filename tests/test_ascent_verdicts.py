"""bench/ascent_verdicts.py's core on tiny synthetic cases (no run needed): beta0', the
replacement of E at beta0' (only that beta, never lower), the check of the sampled values,
the comparison of claims tables, the ratios, and the estimates of one tiny student seeded as
evaluate_perturbation.py seeds them."""

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ascent_verdicts", ROOT / "bench/ascent_verdicts.py")
av = importlib.util.module_from_spec(spec)
spec.loader.exec_module(av)

BETAS = [0.0, 0.016, 0.0452, 0.064, 0.0905]


def student(width: int, seed: int, norm: str = "inf") -> dict:
    return dict(
        target="pol", family="rnn", structure="diagonal", param="direct",
        activation="tanh", width=width, seed=seed, norm=norm,
    )  # fmt: skip


def perturbation() -> pd.DataFrame:
    rows = []
    for width in (2, 4):
        for norm in ("inf", "l2"):
            for i, beta in enumerate(BETAS):
                error = 1e-3 * width * (i + 1)
                rows.append(student(width, 1, norm) | dict(beta=beta, error=error, error_max=error))
    return pd.DataFrame(rows)


def test_beta0_prime_is_the_largest_grid_beta_not_above_beta0():
    assert av.beta0_prime(BETAS, 0.064) == 0.064
    assert av.beta0_prime(BETAS, 0.06) == 0.0452
    assert av.beta0_prime([0.0, 0.1], 0.05) == 0.0
    with pytest.raises(ValueError):
        av.beta0_prime([0.1, 0.2], 0.05)


def test_replacement_touches_only_beta0_prime_and_never_lowers():
    table = perturbation()
    beta = 0.0452
    estimates = pd.DataFrame(
        [
            student(2, 1, "inf") | {"sampled": 0.006, "ascended": 1.0},  # raises E
            student(4, 1, "inf") | {"sampled": 0.024, "ascended": 1e-9},  # below: kept
            student(2, 1, "l2") | {"sampled": 0.006, "ascended": math.inf},  # diverged
        ]
    )
    out = av.with_ascended(table, estimates, beta)
    assert table.equals(perturbation())  # the input is not modified
    assert list(out.columns) == list(table.columns) and out.index.equals(table.index)
    moved = out["error"] != table["error"]
    assert (out.loc[moved, "beta"] == beta).all()
    assert (out["error"] >= table["error"]).all()
    pd.testing.assert_frame_equal(out.drop(columns="error"), table.drop(columns="error"))
    at = out[out["beta"] == beta].set_index(["width", "norm"])["error"]
    assert at[(2, "inf")] == 1.0
    assert (
        at[(4, "inf")]
        == table.query("beta == @beta and width == 4 and norm == 'inf'")["error"].item()
    )
    assert math.isinf(at[(2, "l2")])
    assert at[(4, "l2")] == 0.012  # no estimate: as it was
    assert moved.sum() == 2


def test_check_sampled_asserts_equality_with_the_runs_error_max():
    table = perturbation()
    good = pd.DataFrame([student(4, 1, "l2") | {"sampled": 0.012 * (1 + 1e-7), "ascended": 1}])
    assert av.check_sampled(good, table, 0.0452) == 1
    bad = good.assign(sampled=0.013)
    with pytest.raises(AssertionError):
        av.check_sampled(bad, table, 0.0452)
    missing = pd.DataFrame([student(6, 1) | {"sampled": 0.1, "ascended": 1}])
    with pytest.raises(AssertionError):
        av.check_sampled(missing, table, 0.0452)


def claims(verdicts: list[str], estimates: list[float]) -> pd.DataFrame:
    rows = []
    for i, (verdict, estimate) in enumerate(zip(verdicts, estimates, strict=True)):
        rows.append(
            dict(claim=str(i), setting=f"s{i}", reading="r", measure="error", estimate=estimate,
                 ci_low=estimate - 1, ci_high=estimate + 1, p_adj=0.01, verdict=verdict)
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_verdict_changes_finds_a_forced_change_and_nothing_else():
    before = claims(["holds", "fails", "inconclusive"], [0.1, -1.0, 0.0])
    assert av.verdict_changes(before, before.copy(), "inf").empty
    after = claims(["holds", "fails", "holds"], [0.1, -1.2, 0.5])
    changed = av.verdict_changes(before, after, "l2")
    assert len(changed) == 1
    row = changed.iloc[0]
    assert (row["norm"], row["claim"], row["verdict_before"], row["verdict_after"]) == (
        "l2", "2", "inconclusive", "holds"
    )  # fmt: skip
    assert (row["estimate_before"], row["estimate_after"]) == (0.0, 0.5)
    gone = av.verdict_changes(before, after.iloc[:2], "inf")  # a row missing counts
    assert list(gone["claim"]) == ["2"]


def test_only_norm_and_ratios():
    tables = {"perturbation": perturbation(), "training": pd.DataFrame({"seed": [1]})}
    l2 = av.only_norm(tables, "l2")
    assert set(l2["perturbation"]["norm"]) == {"l2"} and len(l2["training"]) == 1
    assert av.ratio(2.0, 1.0) == 2.0 and av.ratio(math.inf, math.inf) == 1.0
    assert math.isinf(av.ratio(math.inf, 1.0))
    est = pd.DataFrame(
        [student(2, s, "inf") | {"sampled": 1.0, "ascended": float(s)} for s in (1, 2, 3)]
    )
    table = av.ratio_table(est)
    assert len(table) == 1
    assert table.iloc[0][["ratio_median", "ratio_min", "ratio_max", "n_seeds"]].tolist() == [
        2.0, 1.0, 3.0, 3
    ]  # fmt: skip


def test_estimates_of_a_tiny_student_match_the_workflows_sampled_sweep():
    from curse_memory.model import StudentConfig, StudentRNN
    from curse_memory.perturbation import perturbation_sweep

    torch.manual_seed(0)
    model = StudentRNN(StudentConfig(width=3, activation="tanh")).requires_grad_(False)
    x = torch.randn(8, 12, 1)
    data = {"x_test": x, "y_test": torch.randn(8, 12, 1)}
    betas = [0.0, 0.01, 0.05, 0.2]
    out = av.student_estimates(model, data, 7, ["inf", "l2"], 0.05, 4, 3, 0.1)
    for e in out:  # the full grid, sampled, seeded as evaluate_perturbation.py
        generator = torch.Generator().manual_seed(7)
        sweep = perturbation_sweep(model, x, data["y_test"], betas, 4, e["norm"], generator)
        assert e["sampled"] == pytest.approx(sweep[2]["error"], rel=1e-6)
        assert e["ascended"] >= e["sampled"]
