"""Stability radii, crossing points, slopes and the claims table on synthetic results."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest

from curse_memory.analysis import (
    CLAIM_COLUMNS,
    CLAIMS,
    MODEL,
    VERDICTS,
    ClaimContext,
    Grid,
    all_points,
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
    claim_grid,
    crossing_points,
    crossing_table,
    evaluate,
    family_rows,
    radius_points,
    radius_table,
    seed_halves,
    slope_table,
    target_role,
)
from curse_memory.memory import decay_fit
from curse_memory.perturbation import beta_grid

BETAS = beta_grid()
BETA_MIN = min(b for b in BETAS if b > 0)
WIDTHS = [8, 16, 32, 64]
SEEDS = tuple(range(1, 13))  # enough seeds to decide (df 11)
GRID = Grid(beta_min=BETA_MIN, beta_max=max(BETAS), beta0=0.064)
THRESHOLDS = {"blowup_ratio": 0.5, "later_ratio": 2.0, "beta0": 0.064}
SPECS = {"exp": {"kind": "linear", "kernel": "exp"}, "pol": {"kind": "linear", "kernel": "pol"}}


def jitter(*key, sd: float = 0.15) -> float:
    """A reproducible log-normal factor per (target, param, seed[, width])."""
    rng = np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))
    return float(np.exp(sd * rng.standard_normal()))


def curve(e0: float, blowup: float | None, knee: float = 1.0) -> np.ndarray:
    """A monotone E(beta): e0 + (beta/knee)^2, infinite from ``blowup`` on."""
    b = np.asarray(BETAS)
    e = e0 + (b / knee) ** 2
    if blowup is not None:
        e = np.where(b >= blowup, np.inf, e)
    return e


def perturbation_frame(
    families: dict, seeds=SEEDS, activation: str = "linear", lost_tau: float = 1.0
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
    loss = [jitter(*r, sd=0.1) / w for r, w in zip(t.to_numpy().tolist(), t["width"], strict=True)]
    return t.assign(test_loss=loss, min_eig=min_eig)


def memory_fit_frame(training: pd.DataFrame, rate=None) -> pd.DataFrame:
    """Students' tail fits: ``rate(target, width, seed)`` (default: 0.5 on exp, 1/m on pol,
    as the theory predicts), exponential; the targets' fits."""
    rate = rate or (lambda target, m, s: (0.5 if target == "exp" else 2.0 / m) * jitter(s, m))
    keys = [k for k in MODEL if k in training]
    students = training[keys].assign(
        subject=training[keys].astype(str).agg("/".join, axis=1), kind="student"
    )
    students["rate_exp"] = [
        rate(t, m, s)
        for t, m, s in zip(students["target"], students["width"], students["seed"], strict=True)
    ]
    students["decay"] = np.where(students["rate_exp"] > 1e-3, "exponential", "non-decaying")
    targets = pd.DataFrame(
        {"subject": ["exp", "pol"], "kind": "target", "decay": ["exponential", "polynomial"]}
    )
    fits = pd.concat([targets, students], ignore_index=True)
    return fits.assign(fit_exp=0.9, fit_pol=0.8)


def tables(pert: pd.DataFrame, rate=None) -> dict:
    training = training_frame(pert)
    return dict(
        training=training,
        radius=radius_table(pert),
        crossings=crossing_table(pert),
        perturbation=pert.drop(columns="tau"),  # as perturbation.tsv: tau is in radius
        memory_fit=memory_fit_frame(training, rate),
    )


def run_claims(
    families=None, seeds=SEEDS, pert=None, thresholds=THRESHOLDS, specs=SPECS, rate=None
):
    pert = perturbation_frame(families, seeds) if pert is None else pert
    return evaluate(**tables(pert, rate), specs=specs, thresholds=thresholds, grid=GRID)


def verdicts(claims: pd.DataFrame, claim: str, contains: str = "") -> list[str]:
    rows = claims[(claims["claim"] == claim) & claims["setting"].str.contains(contains)]
    assert len(rows), (claim, contains, claims)
    return rows["verdict"].tolist()


# the paper's pattern: exp stable (common crossing), pol/direct cursed, softplus cured;
# every seed its own draw of the knee and blow-up point
def paper_pattern():
    def exp_direct(m, seed):
        j = jitter("exp", seed, m)
        return curve(1.0 / m, blowup=0.5 * j, knee=0.07 * j)

    def pol_direct(m, seed):  # crossings and blow-up move towards 0 as m grows
        j = jitter("pol", seed, m)
        return curve(1.0 / m, blowup=0.5 * j / m, knee=0.3 * j / m)

    def pol_softplus(m, seed):
        j = jitter("soft", seed, m)
        return curve(1.0 / m, blowup=None, knee=0.1 * j)

    return {
        ("exp", "direct"): exp_direct,
        ("pol", "direct"): pol_direct,
        ("pol", "softplus"): pol_softplus,
    }


def fixed_pattern():
    """The paper pattern without seed-to-seed variation (for exact table checks)."""
    return {
        ("exp", "direct"): lambda m, s: curve(1.0 / m, blowup=0.5, knee=0.07),
        ("pol", "direct"): lambda m, s: curve(1.0 / m, blowup=0.5 / m, knee=0.3 / m),
        ("pol", "softplus"): lambda m, s: curve(1.0 / m, blowup=None, knee=0.1),
    }


def test_radius_table_finds_the_blowup_and_censors_stable_models():
    pert = perturbation_frame(fixed_pattern(), seeds=(1,))
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
    cross = crossing_table(perturbation_frame(fam, seeds=(1,)))
    assert set(cross.loc[cross["target"] == "exp", "status"]) == {"not_monotone"}
    pol = cross[cross["target"] == "pol"].sort_values("width")
    assert (pol["status"] == "crossed").all()
    assert (np.diff(pol["beta_cross"].to_numpy()) < 0).all()
    assert list(pol["width_narrow"]) == WIDTHS[:-1] and list(pol["width"]) == WIDTHS[1:]


def test_radius_points_turn_censored_and_zero_radii_into_bounds():
    fam = {
        ("a", "never"): lambda m, s: curve(0.5, blowup=None, knee=10.0),  # never lost
        ("b", "zero"): lambda m, s: curve(2.0, blowup=None),  # lost at beta = 0 already
    }
    points = radius_points(radius_table(perturbation_frame(fam, (1,))), "lost", GRID)
    by = points.groupby("target")
    assert set(by.get_group("a")["bound"]) == {"lower"}
    assert (by.get_group("a")["value"] == GRID.beta_max).all()
    zero = by.get_group("b")  # reported as an upper bound at beta_min, not dropped
    assert len(zero) == len(WIDTHS) and set(zero["bound"]) == {"upper"}
    assert (zero["value"] == BETA_MIN).all()


def test_crossing_points_bound_never_and_edge_crossings_and_drop_meaningless_pairs():
    cross = crossings_frame(
        [BETA_MIN, 0.05, math.nan, math.nan], ["crossed", "crossed", "never", "not_monotone"]
    )
    points = crossing_points(cross, GRID)
    assert points["bound"].tolist() == ["upper", "", "lower"]
    assert points["value"].tolist() == [BETA_MIN, 0.05, GRID.beta_max]


def test_slope_table_is_per_seed_with_its_degrees_of_freedom():
    pert = perturbation_frame(paper_pattern(), seeds=(1, 2, 3))
    both = pd.concat([pert, pert.assign(norm="l2", error=pert["error"] * 10)])
    t = tables(both)
    points = all_points(**t, grid=GRID, rate_floor=1e-4)
    slopes = slope_table(points, {})
    assert set(slopes["norm"]) == {"inf", "l2", "none"}  # loss and rate: no norm
    assert set(slopes["measure"]) == {"blowup", "lost", "crossing", "error", "loss", "rate"}
    assert (slopes["n_seeds"] == 3).all() and (slopes["df"] == 2).all()
    assert {"pooled_slope", "censored_share", "p_effect", "p_none"} <= set(slopes.columns)
    soft = slopes[(slopes["param"] == "softplus") & (slopes["measure"] == "blowup")]
    soft = soft[soft["norm"] == "inf"]
    assert (soft["censored_share"] == 1.0).all()  # never blows up: every value a bound
    assert np.isinf(soft["ci_low"]).all() and np.isinf(soft["ci_high"]).all()


def test_claims_table_has_three_verdicts_and_says_what_decided_them():
    claims = run_claims(paper_pattern()).claims
    assert list(claims.columns) == CLAIM_COLUMNS
    assert set(claims["verdict"]) <= set(VERDICTS)
    assert {"n_seeds", "df", "test"} <= set(claims.columns)
    assert set(claims["claim"]) == {"1", "2a", "2b", "2c", "3", "4", "5", "F", "grid"}
    tested = claims[claims["test"].str.startswith("t across seeds")]
    assert (tested["test"].str.contains("Holm over")).all()
    assert (claims.loc[claims["n_seeds"] > 0, "df"] == SEEDS[-1] - 1).all()


def test_claims_hold_on_the_paper_pattern():
    claims = run_claims(paper_pattern()).claims
    assert verdicts(claims, "1", "blowup") == ["holds"]
    assert verdicts(claims, "2a") == ["holds"]
    assert verdicts(claims, "2b") == ["holds"]
    blowups = claims.loc[claims["claim"] == "2b", "measured"].iloc[0]
    assert "eigenvalue < 0: 48, > 2/dt: 0" in blowups  # 4 widths x 12 seeds, all negative
    assert verdicts(claims, "2c", "linear crossing") == ["holds"]
    assert verdicts(claims, "2c", "- exp crossing") == ["holds"]  # the paired contrast
    assert verdicts(claims, "3", "softplus/linear$") == ["holds"]  # never blows up: >= 2x
    assert verdicts(claims, "4", "students") == ["holds"] * 3  # rate flat on exp, falls on pol
    assert verdicts(claims, "4", "target") == ["holds"] * 2
    assert verdicts(claims, "5") == ["inconclusive"]
    assert "not evaluated" in claims.loc[claims["claim"] == "5", "test"].iloc[0]


def test_claims_fail_when_the_pattern_is_absent():
    """No curse on pol (radius and crossings as exp's), students' rates flat on pol."""

    def same(m, seed):
        j = jitter("same", seed, m)
        return curve(1.0 / m, blowup=0.5 * j, knee=0.07 * j)

    fam = {("exp", "direct"): same, ("pol", "direct"): same, ("pol", "softplus"): same}
    claims = run_claims(fam, rate=lambda t, m, s: 0.5 * jitter(s, m)).claims
    assert verdicts(claims, "2b") == ["fails"]
    assert verdicts(claims, "3", "softplus/linear$") == ["fails"]  # blows up like direct
    students = claims[(claims["claim"] == "4") & claims["setting"].str.contains("pol/")]
    assert set(students["verdict"]) == {"fails"}  # the rate does not fall on pol


def test_three_seeds_leave_most_trends_inconclusive():
    """With 3 seeds (df 2) and Holm over the table, a slope of -1 is not decided: the
    default run says so instead of guessing."""
    claims = run_claims(paper_pattern(), seeds=(1, 2, 3)).claims
    assert verdicts(claims, "2c", "linear crossing") == ["inconclusive"]
    assert (claims.loc[claims["n_seeds"] > 0, "df"] == 2).all()
    loose = run_claims(
        paper_pattern(), seeds=(1, 2, 3), thresholds=THRESHOLDS | {"correction": "none"}
    )
    decided = lambda c: int((c["verdict"] != "inconclusive").sum())  # noqa: E731
    assert decided(loose.claims) >= decided(claims)


def test_claims_use_the_radius_configured_per_activation():
    pert = pd.concat(
        [
            perturbation_frame(paper_pattern(), activation="linear"),
            perturbation_frame(tanh_pattern(), activation="tanh"),
        ]
    )
    claims = run_claims(pert=pert).claims
    b = claims[claims["claim"] == "2b"].set_index("setting")
    assert b.loc["pol/rnn/diagonal/direct/linear", "measure"] == "blowup"
    assert b.loc["pol/rnn/diagonal/direct/tanh", "measure"] == "lost"
    assert b.loc["pol/rnn/diagonal/direct/tanh", "expected"].startswith("beta_lost(pol")
    one = claims[(claims["claim"] == "1") & claims["setting"].str.contains("tanh")]
    assert list(one["measure"]) == ["lost", "crossing", "error"]
    # configured otherwise, tanh students are read by their blow-up radius, whose values
    # on exp are all bounds (E never reaches tau there)
    blowup = THRESHOLDS | {"radius": {"tanh": "blowup"}}
    claims = run_claims(pert=pert, thresholds=blowup).claims
    tanh_b = claims[(claims["claim"] == "2b") & claims["setting"].str.endswith("tanh")]
    assert tanh_b["measure"].tolist() == ["blowup"]
    assert tanh_b["censored_share"].iloc[0] >= 0.5


def tanh_pattern():
    """Bounded students: never inf, but the approximation is lost (E > 1) earlier on pol."""
    return {
        ("exp", "direct"): lambda m, s: curve(1.0 / m, None, knee=0.07 * jitter("e", s, m)),
        ("pol", "direct"): lambda m, s: curve(1.0 / m, None, knee=0.2 * jitter("p", s, m) / m),
        ("pol", "softplus"): lambda m, s: curve(1.0 / m, None, knee=0.1 * jitter("s", s, m)),
    }


def context(pert, thresholds=THRESHOLDS, specs=SPECS) -> ClaimContext:
    t = tables(pert)
    return ClaimContext(
        training=t["training"],
        radius=t["radius"],
        points=all_points(**t, grid=GRID, rate_floor=1e-4),
        memory_fit=t["memory_fit"],
        specs=specs,
        thresholds=thresholds,
        grid=GRID,
        norm="inf",
    )


def test_radius_measure_defaults_overrides_and_errors():
    ctx = context(perturbation_frame(paper_pattern(), seeds=(1, 2)))
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


def test_claims_run_as_a_registry_and_share_their_trends():
    assert claim_1 in CLAIMS and claim_grid in CLAIMS and family_rows in CLAIMS
    ctx = context(perturbation_frame(paper_pattern(), seeds=(1, 2, 3)))
    rows = [row for claim in (claim_1, claim_2, claim_3, claim_4, claim_5) for row in claim(ctx)]
    families = family_rows(ctx)
    shared = {id(t) for r in rows for t in r.trends} & {id(t) for r in families for t in r.trends}
    assert shared  # a family cell reuses the claims' trends: Holm counts each test once


def test_claim_2_rows_and_no_exp_target():
    pert = perturbation_frame(paper_pattern(), seeds=(1, 2, 3))
    rows = claim_2(context(pert))
    assert [(r.claim, r.measure) for r in rows] == [
        ("2a", "loss"),
        ("2b", "blowup"),
        ("2c", "crossing"),
        ("2c", "crossing"),
        ("2c", "error"),
        ("2c", "error"),
    ]
    assert rows[3].reading.startswith("contrast of")
    rows = claim_2(context(pert[pert["target"] == "pol"], specs={"pol": SPECS["pol"]}))
    assert rows[1].verdict == "inconclusive" and "no exp target" in rows[1].test
    assert [r.claim for r in rows] == ["2a", "2b", "2c", "2c"]  # no contrast without exp


def test_claim_5_rows_on_a_nonlinear_readout():
    specs = SPECS | {"rpol": {"kind": "nonlinear_readout", "kernel": "pol"}}
    fam = paper_pattern() | {("rpol", "direct"): paper_pattern()[("pol", "direct")]}
    claims = run_claims(fam, specs=specs).claims
    five = claims[claims["claim"].str.startswith("5")]
    assert set(five["claim"]) == {"5b", "5c"}
    assert verdicts(claims, "5c", "rpol/rnn/diagonal/direct/linear crossing") == ["holds"]


def crossings_frame(betas: list[float], statuses: list[str]) -> pd.DataFrame:
    n = len(betas)
    return pd.DataFrame(
        dict(target="pol", family="rnn", structure="diagonal", param="direct")
        | dict(activation="linear", seed=1, norm="inf")
        | dict(width_narrow=range(1, n + 1), width=range(2, n + 2))
        | dict(beta_cross=betas, status=statuses)
    )


@pytest.mark.parametrize(
    ("betas", "statuses", "measured", "verdict"),
    [
        # 1 of 10 crossed pairs at beta_min: 10%, holds; "never" and "not_monotone" not counted
        ([BETA_MIN] + [0.05] * 9 + [math.nan] * 2, ["crossed"] * 10 + ["never", "not_monotone"],
         "1 of 10 (10%)", "holds"),
        ([BETA_MIN] * 2 + [0.05] * 8, ["crossed"] * 10, "2 of 10 (20%)", "fails"),
        ([math.nan], ["never"], "0 of 0 (no crossing)", "inconclusive"),
    ],
)  # fmt: skip
def test_claim_grid_counts_crossings_at_the_grids_smallest_beta(betas, statuses, measured, verdict):
    ctx = context(perturbation_frame(paper_pattern(), seeds=(1, 2)))
    ctx.points = crossing_points(crossings_frame(betas, statuses), GRID)
    (row,) = claim_grid(ctx)
    assert (row.claim, row.measure) == ("grid", "grid")
    assert (row.measured, row.verdict) == (measured, verdict)


def test_families_claim_follows_the_theory_and_keeps_the_reference_beside_it():
    """Claim F: diagonal RNN, an lru (the theory: stable on pol, its exp-exp map is a
    stable reparameterisation; the reference's table: unstable) and an lstm (no
    expectation: in families.tsv, not among the claims)."""
    pattern = paper_pattern()
    pert = perturbation_frame(pattern).assign(family="rnn")
    none = dict(structure="none", param="none", activation="none", n_eig_negative=None)
    lru = perturbation_frame(
        {
            ("exp", "none"): pattern[("exp", "direct")],
            ("pol", "none"): tanh_pattern()[("pol", "softplus")],
        }
    ).assign(family="lru", **none)
    lstm = pert[pert["param"] == "direct"].assign(family="lstm", **none)
    pert = pd.concat([pert, lru, lstm], ignore_index=True)
    result = run_claims(pert=pert)
    rows = result.claims[result.claims["claim"] == "F"].set_index("setting")
    assert rows.loc["diagonal RNN: pol/rnn/diagonal/direct/linear", "verdict"] == "holds"
    lru_pol = rows.loc["linear recurrent unit: pol/lru"]
    assert lru_pol["expected"] == "stable (the reference's table: unstable)"
    assert not any(s.startswith("LSTM") for s in rows.index)  # no expectation to test
    table = result.families.set_index("model")
    assert "LSTM" in table.index
    assert table.loc["diagonal RNN", "pol_verdict"] == "unstable"
    assert table.loc["linear recurrent unit", "pol_theory"] == "stable"
    assert table.loc["linear recurrent unit", "pol_reference"] == "unstable"
    assert table.loc["LSTM", "exp_theory"] == ""


def test_families_claim_fails_when_the_curse_is_absent():
    def same(m, seed):
        j = jitter("same", seed, m)
        return curve(1.0 / m, blowup=0.5 * j, knee=0.07 * j)

    claims = run_claims({("exp", "direct"): same, ("pol", "direct"): same}).claims
    rows = claims[claims["claim"] == "F"].set_index("setting")
    row = rows.loc["diagonal RNN: pol/rnn/diagonal/direct/linear"]
    assert row["verdict"] in ("fails", "inconclusive")
    assert "cell unstable" not in row["test"]


def test_seed_halves_find_no_contradiction_on_a_consistent_run_and_flag_one():
    t = tables(perturbation_frame(paper_pattern()))
    kwargs = dict(specs=SPECS, thresholds=THRESHOLDS | {"correction": "none"}, grid=GRID)
    halves = seed_halves(t, kwargs)
    assert {"verdict_a", "verdict_b", "decided_by", "contradicts"} <= set(halves.columns)
    assert set(halves.loc[halves["claim"] == "grid", "decided_by"]) == {"deterministic"}
    assert halves["seeds_a"].iloc[0] == "1 2 3 4 5 6" and not halves["contradicts"].any()
    # seeds 7-12 see the opposite trend of the students' decay rate
    flip = lambda target, m, s: (2.0 / m if s <= 6 else m / 2.0) * jitter(s, m)  # noqa: E731
    t = tables(perturbation_frame(paper_pattern()), rate=flip)
    halves = seed_halves(t, kwargs)
    flagged = halves[halves["contradicts"]]
    assert len(flagged) and (flagged["claim"] == "4").all()


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


def test_filter_claim_compares_the_stability_cell_with_the_teachers_memory():
    """Two teachers: one with exponential memory read as stable (holds), one whose memory
    fits polynomial read as stable too (fails: the filter disagrees)."""
    specs = SPECS | {"trnn": {"kind": "teacher_rnn"}, "ttf": {"kind": "teacher_transformer"}}
    assert target_role(specs["ttf"]) == "teacher_transformer"

    def stable(m, seed):  # every width's E(beta) passes 1 at beta ~ 0.05: a common crossing
        crossing = 0.05 * jitter("t", seed)
        return curve(1.0 / m, blowup=0.5 * jitter("b", seed, m), knee=crossing / (1 - 1 / m) ** 0.5)

    fam = paper_pattern() | {("trnn", "direct"): stable, ("ttf", "direct"): stable}
    t = tables(perturbation_frame(fam))
    fits = t["memory_fit"]
    teachers = pd.DataFrame(
        {"subject": ["trnn", "ttf"], "kind": "target", "decay": ["exponential", "polynomial"]}
    )
    t["memory_fit"] = pd.concat([fits, teachers.assign(fit_exp=0.9, fit_pol=0.8)])
    claims = evaluate(**t, specs=specs, thresholds=THRESHOLDS, grid=GRID).claims
    rows = claims[claims["claim"] == "filter"].set_index("setting")
    assert rows.loc["trnn/rnn/diagonal/direct/linear", "expected"].startswith("stable")
    assert rows.loc["ttf/rnn/diagonal/direct/linear", "expected"].startswith("unstable")
    cells = rows["test"].str.extract(r"cell (\w+)")[0]
    assert cells.tolist() == ["stable", "stable"]  # the same readings for both teachers
    assert rows["verdict"].tolist() == ["holds", "fails"]  # the expectation differs


def test_seed_halves_of_one_seed_are_empty():
    t = tables(perturbation_frame(paper_pattern(), seeds=(1,)))
    halves = seed_halves(t, dict(specs=SPECS, thresholds=THRESHOLDS, grid=GRID))
    assert halves.empty and "contradicts" in halves.columns
