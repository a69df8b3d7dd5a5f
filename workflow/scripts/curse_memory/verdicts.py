"""Seed-level trends and three-valued verdicts (method, "Verdicts"; SPEC §7).

numpy and scipy only. The unit of replication is the seed: a seed fixes a target's data and
a chain of students of growing width, so the widths of one seed are not independent. A
trend in m is estimated *within* each seed (Theil-Sen slope of log value against log m),
and its uncertainty comes from the spread *across* seeds (t with n_seeds - 1 degrees of
freedom).

Censoring. A value may be a bound rather than an observation: ``"lower"`` when the truth
is at least the recorded value (a radius never reached on the grid, a crossing that never
happens, a diverged error), ``"upper"`` when it is at most the recorded value (a radius of
0, a crossing at the grid's smallest beta, a memory that does not decay). A bound is never
used as if observed: every pairwise slope becomes an interval [L, U] (one side infinite
where the bound leaves it open), the Theil-Sen median of the pairwise L's and U's bounds the
seed's slope (the median is monotone), and a lower confidence limit is computed from the
seeds' lower bounds, an upper one from their upper bounds. So a trend that rests on bounds
is decided only when the bounds decide it.

Verdicts. A trend shows an *effect* (e.g. "shrinks") when the one-sided t test of
H0: mu >= 0 is rejected and the estimate's bound is at least the effect size delta in the
effect's direction; it shows *no effect* ("does not shrink", an equivalence test) when
H0: mu <= -delta is rejected; otherwise it is undecided. Never does "the CI contains 0"
count as evidence of no effect. The tests' p-values of one table are corrected together
(Holm), each one-sided at alpha / 2, so an uncorrected decision matches the two-sided
(1 - alpha) CI lying on one side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOUNDS = ("", "lower", "upper")  # exact; truth >= value; truth <= value
EFFECT, NO_EFFECT, UNDECIDED = "effect", "no effect", "undecided"


# ------------------------------------------------------------------ within one seed
def pairwise_slopes(x, y, bound) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes of log y against log x over every pair of distinct x, with their bounds.

    Returns (recorded, low, high): the slope of the recorded values and the interval the
    true slope lies in. A lower bound at the wider point (or an upper bound at the narrower
    one) leaves the slope open upwards; the reverse leaves it open downwards.
    """
    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    bound = np.asarray(bound, dtype=object)
    i, j = np.triu_indices(len(x), k=1)
    keep = x[i] != x[j]
    i, j = i[keep], j[keep]
    swap = x[i] > x[j]  # order every pair narrow -> wide
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    recorded = (y[j] - y[i]) / (x[j] - x[i])
    open_up = (bound[j] == "lower") | (bound[i] == "upper")
    open_down = (bound[j] == "upper") | (bound[i] == "lower")
    low = np.where(open_down, -np.inf, recorded)
    high = np.where(open_up, np.inf, recorded)
    return recorded, low, high


def seed_slope(x, y, bound=None) -> dict:
    """Theil-Sen slope of log y against log x within one seed, with its censoring bounds.

    ``y`` must be positive (a caller turns 0 into an "upper" bound at a floor). Returns
    {estimate, low, high, n, n_bound}; the estimate is the median of the recorded pairwise
    slopes, low/high the medians of their bounds. Fewer than 2 distinct x gives NaN.
    """
    y = np.asarray(y, float)
    bound = np.full(len(y), "", dtype=object) if bound is None else np.asarray(bound, object)
    out = {"estimate": math.nan, "low": math.nan, "high": math.nan, "n": len(y)}
    out["n_bound"] = int((bound != "").sum())
    if (y <= 0).any() or not np.isfinite(y).all():
        raise ValueError(f"seed_slope needs finite positive values, got {y}")
    recorded, low, high = pairwise_slopes(x, y, bound)
    if len(recorded) == 0:
        return out
    out["estimate"] = float(np.median(recorded))
    out["low"], out["high"] = float(np.median(low)), float(np.median(high))
    return out


def seed_median(y, low=None, high=None) -> dict:
    """Median of values within one seed (e.g. log ratios over widths), with its bounds:
    each value's truth lies in [low, high] (default: exact)."""
    y = np.asarray(y, float)
    low = y if low is None else np.asarray(low, float)
    high = y if high is None else np.asarray(high, float)
    out = {"estimate": math.nan, "low": math.nan, "high": math.nan, "n": len(y)}
    out["n_bound"] = int(((low < y) | (high > y)).sum())
    if len(y):
        out |= {"estimate": float(np.median(y)), "low": float(np.median(low))}
        out["high"] = float(np.median(high))
    return out


# ------------------------------------------------------------------ across seeds
@dataclass
class Trend:
    """A reading summarised across seeds: the estimate, its bounds and CI, and the two
    one-sided tests behind a verdict.

    ``direction`` -1: the effect is a decrease (a radius shrinks); +1: an increase (an
    error grows). ``zero`` is the value of no change (0 for a slope, log(limit) for a
    ratio) and ``margin`` the equivalence margin (zero - delta for a decrease). The effect
    is shown when H0 "mu on the no-effect side of zero" is rejected and the estimate's
    bound lies beyond the margin; no effect when H0 "mu beyond the margin" is rejected.
    """

    key: str
    estimate: float
    bound_low: float
    bound_high: float
    ci_low: float
    ci_high: float
    n_seeds: int
    df: int
    n_values: int
    n_bound: int
    direction: int
    zero: float
    margin: float
    p_effect: float
    p_none: float
    outcome: str = UNDECIDED
    p_adj: float = math.nan

    @property
    def censored_share(self) -> float:
        return self.n_bound / self.n_values if self.n_values else math.nan

    def magnitude_ok(self) -> bool:
        """The estimate's bound on the effect side reaches the margin."""
        if self.direction < 0:
            return bool(self.bound_high <= self.margin)
        return bool(self.bound_low >= self.margin)


def _t_p(values: np.ndarray, reference: float, below: bool) -> float:
    """One-sided p of H0 "mu >= reference" (below=True) or "mu <= reference", t test."""
    if len(values) < 2 or not np.isfinite(values).all():
        return 1.0
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd == 0:  # every seed equal (readings on a grid): the exact sign test instead
        side = values < reference if below else values > reference
        return 0.5 ** len(values) if side.all() else 1.0
    t = (mean - reference) / (sd / math.sqrt(len(values)))
    return float(stats.t.cdf(t, len(values) - 1) if below else stats.t.sf(t, len(values) - 1))


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if len(v) else math.nan


def across_seeds(
    key: str,
    per_seed: Sequence[dict],
    delta: float,
    direction: int = -1,
    zero: float = 0.0,
    alpha: float = 0.05,
) -> Trend:
    """The seeds' estimates (dicts of ``seed_slope``/``seed_median``) as one Trend.

    Seeds without an estimate (NaN) are left out; ``n_seeds`` counts the rest and ``df`` is
    n_seeds - 1. The CI is the two-sided (1 - alpha) t interval, its lower limit from the
    seeds' lower bounds and its upper limit from their upper bounds.
    """
    ok = [s for s in per_seed if np.isfinite(s["estimate"])]
    est = np.array([s["estimate"] for s in ok], float)
    low = np.array([s["low"] for s in ok], float)
    high = np.array([s["high"] for s in ok], float)
    n = len(ok)
    ci_low = ci_high = math.nan
    if n >= 2:
        half = stats.t.ppf(1 - alpha / 2, n - 1) / math.sqrt(n)
        ci_low = -math.inf if not np.isfinite(low).all() else _mean(low) - half * low.std(ddof=1)
        ci_high = math.inf if not np.isfinite(high).all() else _mean(high) + half * high.std(ddof=1)
    margin = zero + direction * delta
    if direction < 0:  # effect: mu < zero, shown by the upper bounds; none: mu > margin
        p_effect, p_none = _t_p(high, zero, below=True), _t_p(low, margin, below=False)
    else:
        p_effect, p_none = _t_p(low, zero, below=False), _t_p(high, margin, below=True)
    return Trend(
        key=key,
        estimate=_mean(est),
        bound_low=_mean(low),
        bound_high=_mean(high),
        ci_low=ci_low,
        ci_high=ci_high,
        n_seeds=n,
        df=max(n - 1, 0),
        n_values=int(sum(s["n"] for s in ok)),
        n_bound=int(sum(s["n_bound"] for s in ok)),
        direction=direction,
        zero=zero,
        margin=margin,
        p_effect=p_effect,
        p_none=p_none,
    )


# ------------------------------------------------------------------ decisions
def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(pvalues, float)
    k = len(p)
    if k == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (k - np.arange(k))))
    out = np.empty(k)
    out[order] = adjusted
    return out


def decide(trends: Sequence[Trend], alpha: float = 0.05, correction: str = "holm") -> None:
    """Set every trend's ``outcome`` (EFFECT, NO_EFFECT, UNDECIDED) and ``p_adj``.

    Both one-sided tests of every trend form the family (``correction`` "holm" or "none");
    a test is rejected at adjusted p <= alpha / 2. The effect needs its magnitude too.
    """
    if correction not in ("holm", "none"):
        raise ValueError(f"claims.correction is {correction!r}; expected one of holm, none")
    unique = list({id(t): t for t in trends}.values())
    raw = [p for t in unique for p in (t.p_effect, t.p_none)]
    adj = holm(raw) if correction == "holm" else np.asarray(raw, float)
    for i, t in enumerate(unique):
        p_effect, p_none = adj[2 * i], adj[2 * i + 1]
        if p_effect <= alpha / 2 and t.magnitude_ok():
            t.outcome, t.p_adj = EFFECT, float(p_effect)
        elif p_none <= alpha / 2:
            t.outcome, t.p_adj = NO_EFFECT, float(p_none)
        else:
            t.outcome, t.p_adj = UNDECIDED, float(min(p_effect, p_none))
