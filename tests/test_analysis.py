"""Stability radii, crossing points, slopes and the claims table on synthetic results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from curse_memory.analysis import (
    claims_table,
    crossing_table,
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


def perturbation_frame(families: dict, seeds=(1,)) -> pd.DataFrame:
    """families: (target, param) -> function(width, seed) -> E(beta) array."""
    rows = []
    for (target, param), fn in families.items():
        for seed in seeds:
            for width in WIDTHS:
                for beta, err in zip(BETAS, fn(width, seed), strict=True):
                    rows.append(
                        dict(target=target, structure="diagonal", param=param, activation="tanh")
                        | dict(width=width, seed=seed, norm="inf", beta=beta, error=err, tau=1e3)
                        | dict(n_eig_negative=int(err > 1e3), n_eig_euler=0)
                    )
    return pd.DataFrame(rows)


def training_frame(perturbation: pd.DataFrame, min_eig: float = 0.1) -> pd.DataFrame:
    keys = ["target", "structure", "param", "activation", "width", "seed"]
    t = perturbation[keys].drop_duplicates().reset_index(drop=True)
    return t.assign(test_loss=1.0 / t["width"], min_eig=min_eig)


def memory_fit_frame(training: pd.DataFrame, decay: str = "exponential") -> pd.DataFrame:
    subjects = (
        training["target"]
        + "/diagonal/"
        + training["param"]
        + "/tanh/w"
        + training["width"].astype(str)
        + "/s"
        + training["seed"].astype(str)
    )
    students = pd.DataFrame({"subject": subjects, "kind": "student", "decay": decay})
    targets = pd.DataFrame(
        {"subject": ["exp", "pol"], "kind": "target", "decay": ["exponential", "polynomial"]}
    )
    fits = pd.concat([targets, students], ignore_index=True)
    return fits.assign(fit_exp=0.9, fit_pol=0.8)


def run_claims(families, seeds=(1, 2, 3), decay="exponential", min_eig=0.1):
    pert = perturbation_frame(families, seeds)
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
    assert set(claims["claim"]) == {"1", "2a", "2b", "2c", "3", "4", "5"}
    assert holds(claims, "1") == ["true", "true"]
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
