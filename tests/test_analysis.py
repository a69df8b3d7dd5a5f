"""Stability radii, crossing points, slopes and the claims table on synthetic results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from curse_memory.analysis import (
    CLAIMS,
    MODEL,
    ClaimContext,
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
    claim_families,
    claim_grid,
    claims_table,
    crossing_table,
    families_table,
    family_cells,
    log_slope,
    radius_table,
    slope_table,
    target_role,
)
from curse_memory.memory import decay_fit
from curse_memory.perturbation import beta_grid

BETAS = beta_grid()
WIDTHS = [8, 16, 32, 64]
THRESHOLDS = {"flat_slope": -0.1, "shrink_slope": -0.3, "blowup_ratio": 0.5, "later_ratio": 2.0}
SPECS = {"exp": {"kind": "linear", "kernel": "exp"}, "pol": {"kind": "linear", "kernel": "pol"}}


def curve(e0: float, blowup: float | None, knee: float = 1.0) -> np.ndarray:
    """A monotone E(beta): e0 + (beta/knee)^2, infinite from ``blowup`` on."""
    b = np.asarray(BETAS)
    e = e0 + (b / knee) ** 2
    if blowup is not None:
        e = np.where(b >= blowup, np.inf, e)
    return e


def perturbation_frame(
    families: dict, seeds=(1,), activation: str = "linear", lost_tau: float = 1.0
) -> pd.DataFrame:
    """families: (target, param) -> function(width, seed) -> E(beta) array."""
    rows = []
    for (target, param), fn in families.items():
        for seed in seeds:
            for width in WIDTHS:
                for beta, err in zip(BETAS, fn(width, seed), strict=True):
                    fam = dict(target=target, structure="diagonal", param=param)
                    rows.append(
                        fam
                        | dict(activation=activation, width=width, seed=seed, norm="inf")
                        | dict(beta=beta, error=err, tau=1e3, lost_tau=lost_tau)
                        | dict(n_eig_negative=int(err > 1e3), n_eig_euler=0)
                    )
    return pd.DataFrame(rows)


def training_frame(perturbation: pd.DataFrame, min_eig: float = 0.1) -> pd.DataFrame:
    keys = [k for k in MODEL if k in perturbation]
    t = perturbation[keys].drop_duplicates().reset_index(drop=True)
    return t.assign(test_loss=1.0 / t["width"], min_eig=min_eig)


def memory_fit_frame(training: pd.DataFrame, decay: str = "exponential") -> pd.DataFrame:
    keys = [k for k in MODEL if k in training]
    students = training[keys].assign(
        subject=training[keys].astype(str).agg("/".join, axis=1), kind="student", decay=decay
    )
    targets = pd.DataFrame(
        {"subject": ["exp", "pol"], "kind": "target", "decay": ["exponential", "polynomial"]}
    )
    fits = pd.concat([targets, students], ignore_index=True)
    return fits.assign(fit_exp=0.9, fit_pol=0.8)


def run_claims(families, seeds=(1, 2, 3), decay="exponential", min_eig=0.1, pert=None):
    pert = perturbation_frame(families, seeds) if pert is None else pert
    radius, crossings = radius_table(pert), crossing_table(pert)
    training = training_frame(pert, min_eig)
    claims, slopes = claims_table(
        training,
        radius,
        crossings,
        memory_fit_frame(training, decay),
        SPECS,
        THRESHOLDS,
        beta_max=max(BETAS),
        beta_min=min(b for b in BETAS if b > 0),
    )
    return claims, slopes


def holds(claims: pd.DataFrame, claim: str, contains: str = "") -> list[str]:
    rows = claims[(claims["claim"] == claim) & claims["setting"].str.contains(contains)]
    assert len(rows), (claim, contains, claims)
    return rows["holds"].tolist()


# the paper's pattern: exp stable (common crossing), pol/direct cursed, softplus cured
def paper_pattern():
    def exp_direct(m, seed):
        return curve(1.0 / m, blowup=0.5, knee=0.07 * (1 + 0.01 * seed))

    def pol_direct(m, seed):  # crossings and blow-up move towards 0 as m grows
        return curve(1.0 / m, blowup=0.5 / m, knee=0.3 / m)

    def pol_softplus(m, seed):
        return curve(1.0 / m, blowup=None, knee=0.1)

    return {
        ("exp", "direct"): exp_direct,
        ("pol", "direct"): pol_direct,
        ("pol", "softplus"): pol_softplus,
    }


def test_radius_table_finds_the_blowup_and_censors_stable_models():
    pert = perturbation_frame(paper_pattern())
    radius = radius_table(pert).set_index(["target", "param", "width"])
    beta_below_half = max(b for b in BETAS if b < 0.5)
    assert radius.loc[("exp", "direct", 8), "beta_star"] == beta_below_half
    assert not radius.loc[("exp", "direct", 8), "censored"]
    assert math.isnan(radius.loc[("pol", "softplus", 64), "beta_star"])
    assert radius.loc[("pol", "softplus", 64), "censored"]
    pol = radius.loc[("pol", "direct")]["beta_star"]
    assert (np.diff(pol.to_numpy()) < 0).all()  # the curse: radius shrinks with m


def test_crossing_table_statuses():
    fam = {
        ("pol", "direct"): lambda m, s: curve(1.0 / m, blowup=None, knee=0.3 / m),
        ("exp", "direct"): lambda m, s: curve(1.0, blowup=None),  # equal E(0): not monotone
    }
    cross = crossing_table(perturbation_frame(fam))
    assert set(cross.loc[cross["target"] == "exp", "status"]) == {"not_monotone"}
    pol = cross[cross["target"] == "pol"].sort_values("width")
    assert (pol["status"] == "crossed").all()
    assert (np.diff(pol["beta_cross"].to_numpy()) < 0).all()
    assert list(pol["width_narrow"]) == WIDTHS[:-1] and list(pol["width"]) == WIDTHS[1:]


def test_log_slope_recovers_a_power_law_with_a_ci():
    m = np.array(WIDTHS * 3, dtype=float)
    rng = np.random.default_rng(0)
    beta = 0.2 * m**-0.7 * np.exp(0.05 * rng.standard_normal(m.size))
    fit = log_slope(m, beta)
    assert fit["ci_low"] < -0.7 < fit["ci_high"]
    assert fit["slope"] == pytest.approx(-0.7, abs=0.1) and fit["n"] == 12
    assert math.isnan(log_slope([8, 8], [0.1, 0.2])["slope"])  # one width: no slope


def test_slope_table_puts_censored_values_at_the_grid_maximum():
    pert = perturbation_frame(paper_pattern())
    slopes = slope_table(radius_table(pert), crossing_table(pert), beta_max=max(BETAS))
    soft = slopes[(slopes["param"] == "softplus") & (slopes["measure"] == "blowup")].iloc[0]
    assert soft["n_censored"] == 4 and soft["slope"] == pytest.approx(0.0)


def test_slopes_cover_every_norm_and_claims_use_the_first():
    pert = perturbation_frame(paper_pattern(), seeds=(1, 2, 3))
    both = pd.concat([pert, pert.assign(norm="l2", error=pert["error"] * 10)])
    training = training_frame(pert)
    claims, slopes = claims_table(
        training,
        radius_table(both),
        crossing_table(both),
        memory_fit_frame(training),
        SPECS,
        THRESHOLDS,
        beta_max=max(BETAS),
    )
    assert set(slopes["norm"]) == {"inf", "l2"}
    assert holds(claims, "2c") == ["true"]


def test_claims_hold_on_the_paper_pattern():
    claims, _ = run_claims(paper_pattern())
    assert set(claims["claim"]) == {"1", "2a", "2b", "2c", "3", "4", "5", "F", "grid"}
    assert list(claims.columns) == ["claim", "setting", "measure", "expected", "measured", "holds"]
    assert holds(claims, "1") == ["true", "true", "true"]  # blowup, lost, crossing
    assert holds(claims, "2a") == ["true"]
    assert holds(claims, "2b") == ["true"]
    blowups = claims.loc[claims["claim"] == "2b", "measured"].iloc[0]
    assert "eigenvalue < 0: 12, > 2/dt: 0" in blowups  # 4 widths x 3 seeds, all negative
    assert holds(claims, "2c") == ["true"]
    assert holds(claims, "3", "blowup") == ["true"]
    assert holds(claims, "4") == ["true"] * 5  # 3 student families, 2 targets
    assert holds(claims, "5") == ["n/a"]


def test_claims_fail_when_the_pattern_is_absent():
    """No curse on pol (radius as large as exp's, crossings flat), students non-decaying."""
    same = lambda m, seed: curve(1.0 / m, blowup=0.5, knee=0.07)  # noqa: E731
    fam = {("exp", "direct"): same, ("pol", "direct"): same, ("pol", "softplus"): same}
    claims, _ = run_claims(fam, decay="non-decaying", min_eig=0.0)
    assert holds(claims, "2b") == ["false"]
    assert holds(claims, "2c") == ["false"]
    assert holds(claims, "3", "blowup") == ["false"]  # softplus blows up like direct
    students = claims[(claims["claim"] == "4") & claims["setting"].str.endswith("students")]
    assert set(students["holds"]) == {"false"}
    assert students["measured"].str.contains("zero eigenvalue").all()


def test_target_roles_come_from_the_spec_not_the_name():
    assert target_role({"kind": "linear", "kernel": "pol"}) == "pol"
    assert target_role({"kind": "nonlinear_readout", "kernel": "pol"}) == "readout_pol"
    assert target_role({"kind": "teacher_rnn"}) == "teacher"
    assert target_role({"kind": "linear", "kernel": "exp"}) == "exp"
    assert target_role({"kind": "linear", "kernel": "airy"}) == "other"


def test_decay_fit_calls_a_memory_that_does_not_fade_non_decaying():
    t = np.arange(1.0, 1000.0)
    assert decay_fit(t, np.full_like(t, 0.04), t_min=10)["decay"] == "non-decaying"
    dead_unit = 0.03 + np.exp(-0.2 * t)  # a zero eigenvalue next to a decaying mode
    assert decay_fit(t, dead_unit, t_min=10)["decay"] == "non-decaying"
    assert decay_fit(t, np.exp(-0.01 * t), t_min=10)["decay"] == "exponential"


# ---------------------------------------------------------------- approximation-lost radius
BETA_MIN = min(b for b in BETAS if b > 0)


def first_beta(condition) -> float:
    return min(b for b in BETAS if condition(b))


def test_radius_table_has_the_approximation_lost_radius():
    fam = {
        ("a", "finite"): lambda m, s: curve(0.5, blowup=None),  # E > 1 past beta = 0.707
        ("b", "inf"): lambda m, s: curve(0.5, blowup=0.3),  # inf counts as exceeding
        ("c", "never"): lambda m, s: curve(0.5, blowup=None, knee=10.0),  # E < 0.52
        ("d", "zero"): lambda m, s: curve(2.0, blowup=None),  # worse than 0 already
    }
    radius = radius_table(perturbation_frame(fam, lost_tau=1.0))
    assert list(radius.columns) == [
        *MODEL,
        "norm",
        "tau",
        "beta_star",
        "censored",
        "blowup_eig_negative",
        "blowup_eig_euler",
        "lost_tau",
        "beta_lost",
        "lost_censored",
    ]
    assert (radius["lost_tau"] == 1.0).all()
    r = radius.groupby("target").first()
    assert r.loc["a", "beta_lost"] == first_beta(lambda b: b > math.sqrt(0.5))
    assert r.loc["b", "beta_lost"] == first_beta(lambda b: b >= 0.3)
    assert r.loc["b", "beta_star"] == max(b for b in BETAS if b < 0.3)
    assert math.isnan(r.loc["c", "beta_lost"]) and r.loc["c", "lost_censored"]
    assert r.loc["d", "beta_lost"] == 0.0 and not r.loc["d", "lost_censored"]
    assert not r.loc[["a", "b", "d"], "lost_censored"].any()
    assert r.loc["a", "censored"]  # no blow-up, yet the approximation is lost


def test_radius_table_needs_lost_tau():
    pert = perturbation_frame(paper_pattern()).drop(columns="lost_tau")
    with pytest.raises(ValueError, match="lost_tau"):
        radius_table(pert)


def test_lost_censored_reads_back_as_bool(tmp_path):
    from curse_memory.tables import read_table

    fam = {("c", "never"): lambda m, s: curve(0.5, blowup=None, knee=10.0)}
    radius_table(perturbation_frame(fam)).to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    back = read_table(tmp_path / "r.tsv")
    assert back["lost_censored"].dtype == bool and back["lost_censored"].all()


def test_slope_table_has_the_lost_measure():
    pert = perturbation_frame(paper_pattern())
    slopes = slope_table(radius_table(pert), crossing_table(pert), beta_max=max(BETAS))
    assert set(slopes["measure"]) == {"blowup", "lost", "crossing"}
    lost = slopes[slopes["measure"] == "lost"].set_index(["target", "param"])
    assert lost.loc[("pol", "direct"), "slope"] < -0.5  # knee 0.3/m: lost earlier with m
    assert lost.loc[("pol", "softplus"), "n_censored"] == 0
    never = perturbation_frame(paper_pattern(), lost_tau=1e9)  # lost only where E is inf
    slopes = slope_table(radius_table(never), crossing_table(never), beta_max=max(BETAS))
    soft = slopes[(slopes["param"] == "softplus") & (slopes["measure"] == "lost")].iloc[0]
    assert soft["n_censored"] == 4 and soft["slope"] == pytest.approx(0.0)


# ---------------------------------------------------------------- claims, one by one
def tanh_pattern():
    """Bounded students: never inf, but the approximation is lost (E > 1) earlier on pol."""
    return {
        ("exp", "direct"): lambda m, s: curve(1.0 / m, blowup=None, knee=0.07),
        ("pol", "direct"): lambda m, s: curve(1.0 / m, blowup=None, knee=0.2 / m),
        ("pol", "softplus"): lambda m, s: curve(1.0 / m, blowup=None, knee=0.1),
    }


def mixed_frame(seeds=(1, 2, 3)) -> pd.DataFrame:
    """The paper pattern for linear students and tanh_pattern for tanh ones."""
    linear = perturbation_frame(paper_pattern(), seeds, activation="linear")
    return pd.concat([linear, perturbation_frame(tanh_pattern(), seeds, activation="tanh")])


def context(pert, thresholds=THRESHOLDS, specs=SPECS, beta_min=BETA_MIN, decay="exponential"):
    radius, crossings = radius_table(pert), crossing_table(pert)
    training = training_frame(pert)
    return ClaimContext(
        training=training,
        radius=radius,
        crossings=crossings,
        slopes=slope_table(radius, crossings, max(BETAS)),
        memory_fit=memory_fit_frame(training, decay),
        specs=specs,
        thresholds=thresholds,
        beta_max=max(BETAS),
        beta_min=beta_min,
    )


def by_setting(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).set_index("setting")


def test_claims_use_the_radius_configured_per_activation():
    claims, _ = run_claims(None, pert=mixed_frame())
    b = claims[claims["claim"] == "2b"].set_index("setting")
    assert b.loc["pol/rnn/diagonal/direct/linear", "measure"] == "blowup"
    assert b.loc["pol/rnn/diagonal/direct/tanh", "measure"] == "lost"
    assert b.loc["pol/rnn/diagonal/direct/tanh", "expected"].startswith("beta_lost(pol)")
    assert set(b["holds"]) == {"true"}
    three = claims[claims["claim"] == "3"].set_index("setting")
    assert three.loc["pol/rnn/diagonal/softplus/tanh lost", "measure"] == "lost"
    assert three.loc["pol/rnn/diagonal/softplus/tanh lost", "holds"] == "true"
    assert three.loc["pol/rnn/diagonal/softplus/linear blowup", "measure"] == "blowup"
    one = claims[claims["claim"] == "1"]
    assert list(one.loc[one["setting"].str.contains("tanh"), "measure"]) == [
        "blowup",
        "lost",
        "crossing",
    ]
    # the blow-up radius says nothing for tanh: never reached, so pol looks like exp
    blowup = THRESHOLDS | {"radius": {"tanh": "blowup"}}
    rows = by_setting(claim_2(context(mixed_frame(), thresholds=blowup)))
    tanh_b = rows[(rows["claim"] == "2b")].loc["pol/rnn/diagonal/direct/tanh"]
    assert tanh_b["measure"] == "blowup" and tanh_b["holds"] == "false"


def test_radius_measure_defaults_overrides_and_errors():
    ctx = context(perturbation_frame(paper_pattern()))
    assert [ctx.radius_measure(a) for a in ("linear", "tanh", "hardtanh")] == [
        "blowup",
        "lost",
        "lost",
    ]
    ctx.thresholds = THRESHOLDS | {"radius": {"linear": "lost"}}  # others keep the default
    assert ctx.radius_measure("linear") == "lost" and ctx.radius_measure("tanh") == "lost"
    ctx.thresholds = THRESHOLDS | {"radius": {"tanh": "crossing"}}
    with pytest.raises(ValueError, match="claims.radius.tanh"):
        ctx.radius_measure("tanh")


def test_claims_run_as_a_registry_of_functions():
    assert [claim_1, claim_2, claim_3, claim_4, claim_5, claim_families, claim_grid] == CLAIMS
    ctx = context(perturbation_frame(paper_pattern(), seeds=(1, 2, 3)))
    rows = [row for claim in CLAIMS for row in claim(ctx)]
    claims, _ = run_claims(paper_pattern())
    pd.testing.assert_frame_equal(pd.DataFrame(rows), claims)


def test_claim_1_rows():
    rows = claim_1(context(perturbation_frame(paper_pattern(), seeds=(1, 2, 3))))
    assert [r["measure"] for r in rows] == ["blowup", "lost", "crossing"]
    assert {r["claim"] for r in rows} == {"1"} and {r["holds"] for r in rows} == {"true"}


def test_claim_2_rows_and_na_without_exp_target():
    pert = perturbation_frame(paper_pattern(), seeds=(1, 2, 3))
    rows = claim_2(context(pert))
    assert [(r["claim"], r["measure"]) for r in rows] == [
        ("2a", "loss"),
        ("2b", "blowup"),
        ("2c", "crossing"),
    ]
    pol_only = {"pol": SPECS["pol"]}
    rows = claim_2(context(pert[pert["target"] == "pol"], specs=pol_only))
    assert rows[1]["holds"] == "n/a" and rows[1]["measured"] == "no exp target in this config"


def test_claim_3_lost_never_reached_on_the_grid():
    fam = tanh_pattern() | {("pol", "softplus"): lambda m, s: curve(1.0 / m, None, knee=10.0)}
    rows = by_setting(claim_3(context(perturbation_frame(fam, (1, 2, 3), activation="tanh"))))
    row = rows.loc["pol/rnn/diagonal/softplus/tanh lost"]
    assert row["measure"] == "lost" and row["holds"] == "true"
    assert row["measured"].startswith("no approximation lost on the grid")
    assert rows.loc["pol/rnn/diagonal/softplus/tanh crossing", "measure"] == "crossing"


def test_claim_4_and_5_rows():
    ctx = context(perturbation_frame(paper_pattern()), decay="non-decaying")
    rows = claim_4(ctx)
    assert {r["measure"] for r in rows} == {"memory"} and len(rows) == 5
    assert [r["holds"] for r in rows] == ["false"] * 3 + ["true"] * 2  # students, targets
    (row,) = claim_5(ctx)
    assert (row["claim"], row["measure"], row["holds"]) == ("5", "none", "n/a")
    specs = SPECS | {"rpol": {"kind": "nonlinear_readout", "kernel": "pol"}}
    fam = paper_pattern() | {("rpol", "direct"): paper_pattern()[("pol", "direct")]}
    rows = claim_5(context(perturbation_frame(fam, (1, 2, 3)), specs=specs))
    assert [(r["claim"], r["measure"], r["holds"]) for r in rows] == [
        ("5b", "blowup", "true"),
        ("5c", "crossing", "true"),
    ]


def test_claim_4_joins_students_on_their_key_columns_and_counts_dead_units():
    ctx = context(perturbation_frame(paper_pattern()))
    dead = (ctx.training["param"] == "direct") & (ctx.training["width"] == 8)
    ctx.training.loc[dead, "min_eig"] = 0.0
    rows = by_setting(claim_4(ctx))
    n_dead = int((dead & (ctx.training["target"] == "pol")).sum())
    assert (
        f"{n_dead} with a zero eigenvalue"
        in rows.loc["pol/rnn/diagonal/direct/linear students"]["measured"]
    )
    ctx.memory_fit.loc[ctx.memory_fit["kind"] == "student", "seed"] = 99  # unknown students
    with pytest.raises(ValueError, match="training.tsv does not know"):
        claim_4(ctx)


def crossings_frame(betas: list[float], statuses: list[str]) -> pd.DataFrame:
    n = len(betas)
    return pd.DataFrame(
        dict(target="pol", structure="diagonal", param="direct", activation="linear")
        | dict(seed=1, norm="inf", width_narrow=range(1, n + 1), width=range(2, n + 2))
        | dict(beta_cross=betas, status=statuses)
    )


@pytest.mark.parametrize(
    ("betas", "statuses", "measured", "verdict"),
    [
        # 1 of 10 crossed pairs at beta_min: 10%, holds; "never" and "not_monotone" not counted
        ([BETA_MIN] + [0.05] * 9 + [math.nan] * 2, ["crossed"] * 10 + ["never", "not_monotone"],
         "1 of 10 (10%)", "true"),
        ([BETA_MIN] * 2 + [0.05] * 8, ["crossed"] * 10, "2 of 10 (20%)", "false"),
        ([math.nan], ["never"], "0 of 0 (no crossing)", "n/a"),
    ],
)  # fmt: skip
def test_claim_grid_counts_crossings_at_the_grids_smallest_beta(betas, statuses, measured, verdict):
    ctx = context(perturbation_frame(paper_pattern()))
    ctx.crossings = crossings_frame(betas, statuses)
    (row,) = claim_grid(ctx)
    assert (row["claim"], row["measure"]) == ("grid", "grid")
    assert (row["measured"], row["holds"]) == (measured, verdict)
    ctx.beta_min = None
    assert claim_grid(ctx)[0]["holds"] == "n/a"


def test_claims_table_grid_row_on_the_paper_pattern():
    claims, _ = run_claims(paper_pattern())
    (row,) = claims[claims["claim"] == "grid"].to_dict("records")
    crossed = crossing_table(perturbation_frame(paper_pattern(), seeds=(1, 2, 3)))
    crossed = crossed[crossed["status"] == "crossed"]
    edge = int((crossed["beta_cross"] == BETA_MIN).sum())  # pol m=32 -> 64 crosses at once
    assert edge > 0 and row["measured"].startswith(f"{edge} of {len(crossed)} ")
    assert row["holds"] == ("true" if edge / len(crossed) <= 0.1 else "false")


def test_families_claim_and_table_rebuild_the_reference_table():
    """Claim F: diagonal RNN and an lstm (no structure, parameterisation or activation:
    "none") on exp and pol; the curse for direct and lstm on pol, the cure for softplus."""
    pattern = paper_pattern() | {("exp", "softplus"): lambda m, s: curve(1.0 / m, None, 0.1)}
    pert = perturbation_frame(pattern, seeds=(1, 2, 3)).assign(family="rnn")
    lstm = pert[pert["param"] == "direct"].assign(
        family="lstm", structure="none", param="none", activation="none", n_eig_negative=None
    )
    pert = pd.concat([pert, lstm], ignore_index=True)
    claims, _ = run_claims(None, pert=pert)
    rows = claims[claims["claim"] == "F"].set_index("setting")
    assert rows.loc["diagonal RNN: pol/rnn/diagonal/direct/linear", "holds"] == "true"
    assert (
        rows.loc["stable reparameterisation: pol/rnn/diagonal/softplus/linear", "holds"] == "true"
    )
    assert rows.loc["LSTM: pol/lstm", "holds"] == "n/a"  # not in the reference's table
    assert rows.loc["LSTM: pol/lstm", "measured"].startswith("unstable: beta_lost")
    assert rows.loc["LSTM: exp/lstm", "expected"] == "not in the reference's table"
    radius = radius_table(pert)
    assert radius.loc[radius["family"] == "lstm", "blowup_eig_negative"].isna().all()
    table = families_table(claims, family_cells(context(pert))).set_index("model")
    assert list(table.index) == ["diagonal RNN", "stable reparameterisation", "LSTM"]
    assert table.loc["diagonal RNN", ["exp_verdict", "pol_verdict"]].tolist() == [
        "stable",
        "unstable",
    ]
    assert table.loc["diagonal RNN", "pol_reference"] == "unstable"
    assert table.loc["LSTM", "exp_reference"] == ""
    assert "exponential" in table.loc["LSTM", "memory"]
    assert claim_families in CLAIMS


def test_families_claim_fails_when_the_curse_is_absent():
    same = lambda m, seed: curve(1.0 / m, blowup=0.5, knee=0.07)  # noqa: E731
    claims, _ = run_claims({("exp", "direct"): same, ("pol", "direct"): same})
    rows = claims[claims["claim"] == "F"].set_index("setting")
    assert rows.loc["diagonal RNN: pol/rnn/diagonal/direct/linear", "holds"] == "false"
    assert rows.loc["diagonal RNN: pol/rnn/diagonal/direct/linear", "measured"].startswith("stable")
