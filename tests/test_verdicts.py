"""The statistics behind a verdict (curse_memory.verdicts): seed-level Theil-Sen slopes,
censoring bounds, t intervals across seeds, equivalence, Holm, and the CI's coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curse_memory.verdicts import (
    EFFECT,
    NO_EFFECT,
    UNDECIDED,
    across_seeds,
    decide,
    holm,
    pairwise_slopes,
    seed_median,
    seed_slope,
)

WIDTHS = np.array([2, 4, 6, 8, 14], float)


def power_law(slope: float, noise: float, rng) -> np.ndarray:
    return 0.1 * WIDTHS**slope * np.exp(noise * rng.standard_normal(len(WIDTHS)))


def test_seed_slope_is_theil_sen_of_log_log():
    fit = seed_slope(WIDTHS, 3.0 * WIDTHS**-1.5)
    assert fit["estimate"] == pytest.approx(-1.5)
    assert fit["low"] == fit["high"] == pytest.approx(-1.5) and fit["n_bound"] == 0
    outlier = 3.0 * WIDTHS**-1.5
    outlier[2] *= 100  # one wild width moves a median of pairwise slopes little
    assert seed_slope(WIDTHS, outlier)["estimate"] == pytest.approx(-1.5, abs=0.3)
    assert math.isnan(seed_slope([8, 8], [0.1, 0.2])["estimate"])  # one width: no slope
    with pytest.raises(ValueError, match="positive"):
        seed_slope(WIDTHS, [0.1, 0.2, 0.0, 0.1, 0.1])


def test_a_bound_opens_the_pairwise_slope_on_its_side():
    # the widest value is a lower bound (never reached on the grid): slopes to it open upwards
    rec, low, high = pairwise_slopes([2, 4], [0.1, 0.2], ["", "lower"])
    assert rec[0] == pytest.approx(1.0) and low[0] == pytest.approx(1.0) and high[0] == np.inf
    rec, low, high = pairwise_slopes([2, 4], [0.1, 0.2], ["lower", ""])
    assert low[0] == -np.inf and high[0] == pytest.approx(1.0)
    rec, low, high = pairwise_slopes([2, 4], [0.1, 0.2], ["upper", ""])
    assert low[0] == pytest.approx(1.0) and high[0] == np.inf
    _, low, high = pairwise_slopes([2, 4], [0.1, 0.1], ["lower", "lower"])
    assert low[0] == -np.inf and high[0] == np.inf  # two bounds: nothing known


def test_censored_values_bound_the_seed_slope_and_never_count_as_observed():
    y = 0.5 * WIDTHS**-1.0
    bounds = np.array(["", "", "", "lower", "lower"], object)  # the widest two never reached
    fit = seed_slope(WIDTHS, y, bounds)
    assert fit["low"] <= fit["estimate"] and fit["high"] == np.inf and fit["n_bound"] == 2
    every = seed_slope(WIDTHS, np.full(5, 1.0), np.full(5, "lower", object))
    assert (every["low"], every["high"]) == (-np.inf, np.inf)  # all censored: no trend known


def test_trend_of_a_clear_decrease_and_of_a_flat_reading():
    rng = np.random.default_rng(1)
    down = [seed_slope(WIDTHS, power_law(-1.5, 0.1, rng)) for _ in range(10)]
    t = across_seeds("down", down, delta=0.3)
    assert (t.n_seeds, t.df) == (10, 9)
    assert t.ci_high < 0 and t.estimate < -0.3 and t.p_effect < 1e-6
    flat = [seed_slope(WIDTHS, power_law(0.0, 0.1, rng)) for _ in range(10)]
    t = across_seeds("flat", flat, delta=0.3)
    assert t.ci_low > -0.3 and t.p_none < 1e-4
    decide([t])
    assert t.outcome == NO_EFFECT


def test_a_ci_containing_zero_is_not_evidence_of_stability():
    """The reviewer's case: an estimate near -2 whose wide CI contains 0 is undecided."""
    seeds = [seed_slope(WIDTHS, 0.1 * WIDTHS**s) for s in (-4.3, -2.2, 0.1)]
    t = across_seeds("wide", seeds, delta=0.3)
    assert t.ci_low < 0 < t.ci_high
    decide([t])
    assert t.outcome == UNDECIDED


def test_bounds_decide_when_they_suffice():
    """Every seed's widest student never blows up (a lower bound): its pairwise slopes are
    open upwards, which widens the upper side only; 'does not shrink' is still shown."""
    rng = np.random.default_rng(3)
    bounds = np.array(["", "", "", "", "lower"], object)
    seeds = [seed_slope(WIDTHS, power_law(0.5, 0.05, rng), bounds) for _ in range(8)]
    t = across_seeds("up", seeds, delta=0.3)
    assert t.bound_high > t.estimate == t.bound_low and t.ci_low > -0.3
    decide([t])
    assert t.outcome == NO_EFFECT
    assert t.censored_share == pytest.approx(8 / 40)


def test_growth_direction_mirrors_the_tests():
    rng = np.random.default_rng(4)
    seeds = [seed_slope(WIDTHS, power_law(1.0, 0.1, rng)) for _ in range(6)]
    t = across_seeds("grows", seeds, delta=0.3, direction=1)
    decide([t], correction="none")
    assert t.outcome == EFFECT and t.ci_low > 0


def test_ratio_medians_against_a_limit():
    per_seed = [seed_median(np.log([0.2, 0.25, 0.3]) + 0.01 * k) for k in range(6)]
    t = across_seeds("ratio", per_seed, delta=0.0, direction=-1, zero=math.log(0.5))
    decide([t], correction="none")
    assert t.outcome == EFFECT  # the ratio is below 0.5 in every seed
    lower = seed_median(np.log([0.2, 0.3, 4.0]), high=np.log([0.2, 0.3, np.inf]))
    assert lower["high"] == pytest.approx(math.log(0.3)) and lower["n_bound"] == 1


def test_equal_seeds_fall_back_to_the_exact_sign_test():
    same = [{"estimate": -1.0, "low": -1.0, "high": -1.0, "n": 5, "n_bound": 0}] * 3
    t = across_seeds("same", same, delta=0.3)
    assert t.p_effect == pytest.approx(0.125)  # 3 seeds: 1/8, never 0
    decide([t], correction="none")
    assert t.outcome == UNDECIDED


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]).size == 0
    assert (holm([0.5, 0.9]) <= 1).all()


def test_decide_counts_shared_trends_once_and_refuses_unknown_corrections():
    rng = np.random.default_rng(5)
    t = across_seeds("x", [seed_slope(WIDTHS, power_law(-1, 0.1, rng)) for _ in range(5)], 0.3)
    decide([t, t, t])
    assert t.p_adj == pytest.approx(min(1.0, 2 * t.p_effect))  # 2 tests, not 6
    with pytest.raises(ValueError, match="claims.correction"):
        decide([t], correction="bonferroni-ish")


@pytest.mark.parametrize("true_slope", [-1.0, 0.0])
def test_the_ci_covers_the_true_slope_at_about_the_nominal_rate(true_slope):
    """Synthetic seeds with a known slope: per-seed slope spread plus noise per width; the
    95% CI across 10 seeds covers the truth in about 95% of 400 repeats."""
    rng = np.random.default_rng(6)
    covered = 0
    for _ in range(400):
        seeds = [
            seed_slope(WIDTHS, power_law(true_slope + 0.2 * rng.standard_normal(), 0.2, rng))
            for _ in range(10)
        ]
        t = across_seeds("c", seeds, delta=0.3)
        covered += t.ci_low <= true_slope <= t.ci_high
    assert 0.91 <= covered / 400 <= 0.99


def test_verdicts_are_right_on_synthetic_seeds():
    """Over 100 synthetic runs of 10 seeds: a slope of -1 is called a decrease, a slope of
    0 'no decrease' (at this spread, equivalence at delta = 0.3 has about 85-90% power),
    and neither is ever called the opposite."""
    rng = np.random.default_rng(7)
    for truth, want in ((-1.0, EFFECT), (0.0, NO_EFFECT)):
        outcomes = []
        for _ in range(100):
            seeds = [
                seed_slope(WIDTHS, power_law(truth + 0.2 * rng.standard_normal(), 0.2, rng))
                for _ in range(10)
            ]
            t = across_seeds("v", seeds, delta=0.3)
            decide([t])
            outcomes.append(t.outcome)
        assert outcomes.count(want) >= 80
        assert outcomes.count(EFFECT if want == NO_EFFECT else NO_EFFECT) == 0
