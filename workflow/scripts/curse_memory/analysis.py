"""From per-student results to the paper's claims (method §3, "expected pattern").

Everything here works on the long-format tables of the workflow (pandas DataFrames):
stability radii (blow-up and approximation-lost) and crossing points per model, slopes
of log beta against log m with a confidence interval, and the claims table whose rows are
computed, never typed in: one small function per claim (``CLAIMS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from . import families
from .curves import (
    approximation_lost_radius,
    crossing_point,
    monotone_envelope,
    stability_radius,
)
from .tables import with_family
from .verdicts import EFFECT, NO_EFFECT, Trend, across_seeds, decide, seed_median, seed_slope

KEYS = ["target", "family", "structure", "param", "activation"]  # one kind of student
MODEL = [*KEYS, "width", "seed"]  # one trained student


# ---------------------------------------------------------------------------- tables
# the two stability radii of radius_table: measure -> (value column, censored column)
RADII = {"blowup": ("beta_star", "censored"), "lost": ("beta_lost", "lost_censored")}


def radius_table(perturbation: pd.DataFrame) -> pd.DataFrame:
    """Stability radii of every student and norm (needs ``tau`` and ``lost_tau`` columns).

    Blow-up radius beta*(tau) (``beta_star``, ``censored``): the largest grid beta with
    E <= tau. Also what the draws at the first grid beta past it crossed: how many pushed an
    eigenvalue of A below 0 (``blowup_eig_negative``) or above the Euler bound 2/dt
    (``blowup_eig_euler``), so a discretisation blow-up is not mistaken for the curse.
    Approximation-lost radius (``beta_lost``, ``lost_censored``): the smallest grid beta
    with E above ``lost_tau`` (lost_factor x the zero predictor's error), the radius that
    means something for bounded activations, which never blow up.
    """
    if "lost_tau" not in perturbation.columns:
        raise ValueError(
            "radius_table needs a 'lost_tau' column (lost_factor x the zero predictor's test "
            "error, one value per student) next to 'tau'; the perturbation tables have only "
            f"{list(perturbation.columns)}: re-run the perturbation evaluation"
        )
    rows, perturbation = [], with_family(perturbation)
    for key, g in perturbation.groupby([*MODEL, "norm"], sort=True):
        g = g.sort_values("beta")
        tau = float(g["tau"].iloc[0])
        beta_star, censored = stability_radius(g["beta"], g["error"], tau)
        past = g[g["error"] > tau].head(1)
        rows.append(dict(zip([*MODEL, "norm"], key, strict=True)) | {"tau": tau})
        rows[-1] |= {"beta_star": beta_star, "censored": censored}
        for cause in ("eig_negative", "eig_euler"):  # NaN where the family has no eigenvalues
            counts = pd.to_numeric(past[f"n_{cause}"], errors="coerce") if len(past) else None
            no_eig = g[f"n_{cause}"].isna().all()
            rows[-1][f"blowup_{cause}"] = (
                math.nan if no_eig else int(counts.sum()) if counts is not None else 0
            )
        lost_tau = float(g["lost_tau"].iloc[0])
        envelope = monotone_envelope(g["error"])
        beta_lost, lost_censored = approximation_lost_radius(g["beta"], envelope, lost_tau)
        rows[-1] |= {"lost_tau": lost_tau, "beta_lost": beta_lost, "lost_censored": lost_censored}
    return pd.DataFrame(rows)


def crossing_table(perturbation: pd.DataFrame) -> pd.DataFrame:
    """Crossing points of successive widths m < m' within each family, seed and norm."""
    rows, perturbation = [], with_family(perturbation)
    for key, g in perturbation.groupby([*KEYS, "seed", "norm"], sort=True):
        curves = {w: c.sort_values("beta") for w, c in g.groupby("width")}
        widths = sorted(curves)
        for narrow, wide in zip(widths[:-1], widths[1:], strict=True):
            betas = curves[narrow]["beta"].to_numpy()
            beta, status = crossing_point(betas, curves[narrow]["error"], curves[wide]["error"])
            rows.append(dict(zip([*KEYS, "seed", "norm"], key, strict=True)))
            rows[-1] |= {"width_narrow": narrow, "width": wide}
            rows[-1] |= {"beta_cross": beta, "status": status}
    columns = [*KEYS, "seed", "norm", "width_narrow", "width", "beta_cross", "status"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------- readings
# A reading gives every student one value per measure, as tidy points (KEYS, norm, seed,
# width, measure, value, bound), ``bound`` as in verdicts.BOUNDS: "" exact, "lower" the
# truth is at least the value, "upper" at most.
POINT = [*KEYS, "norm", "seed", "width", "measure", "value", "bound"]
# the direction of each measure's effect: radii and crossings shrink (-1), errors grow (+1)
DIRECTION = {"blowup": -1, "lost": -1, "crossing": -1, "error": 1, "loss": -1, "rate": -1}
READING = {
    "blowup": "blow-up radius",
    "lost": "approximation-lost radius",
    "crossing": "crossing points (the paper's reading)",
    "error": "E_m(beta0) (the definition's limsup)",
    "loss": "test loss",
    "rate": "memory decay rate",
}
NO_NORM = "none"  # training and memory readings have no perturbation norm
DELTA_KEYS = ("radius", "crossing", "error", "loss", "rate", "contrast")


@dataclass(frozen=True)
class Grid:
    """The perturbation grid's smallest positive and largest beta, and the fixed beta0 of
    the E_m(beta0) reading."""

    beta_min: float
    beta_max: float
    beta0: float


def radius_points(radius: pd.DataFrame, measure: str, grid: Grid) -> pd.DataFrame:
    """Radius ``measure`` ("blowup", "lost") of every student: a radius never reached on
    the grid is a lower bound at beta_max; a radius of 0 (already past the threshold at
    beta = 0) an upper bound at the grid's smallest beta (it lies in [0, beta_min))."""
    value_col, censored_col = RADII[measure]
    raw = radius[value_col].astype(float)
    censored = radius[censored_col].astype(bool).to_numpy()
    zero = ~censored & (raw.to_numpy() <= 0)
    value = np.select([censored, zero], [grid.beta_max, grid.beta_min], raw.to_numpy())
    bound = np.select([censored, zero], ["lower", "upper"], "")
    out = radius[[*KEYS, "norm", "seed", "width"]].assign(measure=measure, value=value)
    return out.assign(bound=bound)[POINT]


def crossing_points(crossings: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Crossing point of every width-monotone pair, at the wider width: one that never
    happens is a lower bound at beta_max; one at the grid's smallest beta an upper bound
    (it lies in (0, beta_min]). Pairs that are not width-monotone mean nothing: left out."""
    sub = crossings[crossings["status"] != "not_monotone"]
    never = (sub["status"] == "never").to_numpy()
    beta = sub["beta_cross"].astype(float).to_numpy()
    edge = ~never & np.isclose(beta, grid.beta_min, rtol=1e-9, atol=0)
    value = np.where(never, grid.beta_max, beta)
    bound = np.select([never, edge], ["lower", "upper"], "")
    out = sub[[*KEYS, "norm", "seed", "width"]].assign(measure="crossing", value=value)
    return out.assign(bound=bound)[POINT]


def error_points(perturbation: pd.DataFrame, radius: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """E_m(beta0) of every student: the monotone envelope at the largest grid beta <=
    beta0. A diverged error (inf) is a lower bound at the student's blow-up threshold tau
    (from the radius table)."""
    sub = perturbation[perturbation["beta"] <= grid.beta0 * (1 + 1e-9)]
    sub = sub.sort_values("beta").groupby([*MODEL, "norm"], sort=True).tail(1)
    sub = sub.drop(columns="tau", errors="ignore")
    sub = sub.merge(radius[[*MODEL, "norm", "tau"]], on=[*MODEL, "norm"], how="left")
    error = sub["error"].astype(float).to_numpy()
    diverged = ~np.isfinite(error)
    value = np.where(diverged, sub["tau"].astype(float).to_numpy(), error)
    out = sub[[*KEYS, "norm", "seed", "width"]].assign(measure="error", value=value)
    return out.assign(bound=np.where(diverged, "lower", ""))[POINT]


def loss_points(training: pd.DataFrame) -> pd.DataFrame:
    """Test loss of every student; a diverged one (not finite) is a lower bound at the
    largest finite loss of the table."""
    loss = training["test_loss"].astype(float).to_numpy()
    bad = ~np.isfinite(loss)
    top = loss[~bad].max() if (~bad).any() else 1.0
    out = training[[*KEYS, "seed", "width"]].assign(norm=NO_NORM, measure="loss")
    out = out.assign(value=np.where(bad, top, loss), bound=np.where(bad, "lower", ""))
    return out[POINT]


def rate_points(memory_fit: pd.DataFrame, floor: float) -> pd.DataFrame:
    """Fitted exponential decay rate of every student's memory function. A rate at or below
    ``floor`` (the slowest the memory window resolves; a memory that does not decay, e.g. a
    student with a dead unit) is an upper bound at the floor."""
    students = with_family(memory_fit[memory_fit["kind"] == "student"])
    students = students.astype({"width": int, "seed": int})
    rate = students["rate_exp"].astype(float).to_numpy()
    slow = ~np.isfinite(rate) | (rate <= floor) | (students["decay"] == "non-decaying").to_numpy()
    out = students[[*KEYS, "seed", "width"]].assign(norm=NO_NORM, measure="rate")
    out = out.assign(value=np.where(slow, floor, rate), bound=np.where(slow, "upper", ""))
    return out[POINT]


def seed_table(points: pd.DataFrame) -> pd.DataFrame:
    """The Theil-Sen slope of log value against log m within every seed, with its bounds."""
    rows = []
    for key, g in points.groupby([*KEYS, "norm", "measure", "seed"], sort=True):
        fit = seed_slope(g["width"], g["value"], g["bound"])
        rows.append(dict(zip([*KEYS, "norm", "measure", "seed"], key, strict=True)) | fit)
    columns = [*KEYS, "norm", "measure", "seed", "estimate", "low", "high", "n", "n_bound"]
    return pd.DataFrame(rows, columns=columns)


def pooled_slope(points: pd.DataFrame) -> float:
    """OLS slope of log value against log m through every point (descriptive only: the
    points of one seed are not independent, and bounds enter as values)."""
    x, y = np.log(points["width"].astype(float)), np.log(points["value"].astype(float))
    return float(stats.linregress(x, y).slope) if x.nunique() > 1 else math.nan


def _seed_dicts(seeds: pd.DataFrame) -> list[dict]:
    return seeds[["estimate", "low", "high", "n", "n_bound"]].to_dict("records")


def trend_label(fam: dict, norm: str, measure: str) -> str:
    return f"{_label(fam)} {norm} {measure}"


def slope_table(
    points: pd.DataFrame, deltas: dict, alpha: float = 0.05, seeds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Slopes of log value vs log m per kind of student, norm and measure: the mean of
    the seeds' Theil-Sen slopes, its bounds under censoring, the (1 - alpha) CI across
    seeds, n_seeds and df, the censored share, both one-sided p-values (uncorrected) and the
    pooled OLS slope (descriptive, never a decision)."""
    seeds = seed_table(points) if seeds is None else seeds  # the points' per-seed slopes
    rows = []
    for key, g in seeds.groupby([*KEYS, "norm", "measure"], sort=True):
        row = dict(zip([*KEYS, "norm", "measure"], key, strict=True))
        measure = row["measure"]
        fam = {k: row[k] for k in KEYS}
        t = across_seeds(
            trend_label(fam, row["norm"], measure),
            _seed_dicts(g),
            _delta(deltas, measure),
            DIRECTION[measure],
            alpha=alpha,
        )
        mine = _select(points, row)
        rows.append(row | _trend_columns(t) | {"pooled_slope": pooled_slope(mine)})
    columns = [*KEYS, "norm", "measure", *TREND_COLUMNS, "pooled_slope"]
    return pd.DataFrame(rows, columns=columns)


TREND_COLUMNS = ["slope", "slope_low", "slope_high", "ci_low", "ci_high", "n_seeds", "df"]
TREND_COLUMNS += ["n", "n_censored", "censored_share", "p_effect", "p_none"]


def _trend_columns(t: Trend) -> dict:
    values = (t.estimate, t.bound_low, t.bound_high, t.ci_low, t.ci_high, t.n_seeds, t.df)
    values += (t.n_values, t.n_bound, t.censored_share, t.p_effect, t.p_none)
    return dict(zip(TREND_COLUMNS, values, strict=True))


def _delta(deltas: dict, measure: str) -> float:
    key = "radius" if measure in RADII else measure
    return float((DEFAULT_DELTA | dict(deltas or {}))[key])


# ---------------------------------------------------------------------------- claims
CLAIM_COLUMNS = ["claim", "setting", "reading", "measure", "expected", "measured"]
CLAIM_COLUMNS += ["estimate", "ci_low", "ci_high", "n_seeds", "df", "censored_share"]
CLAIM_COLUMNS += ["test", "p_adj", "verdict"]
VERDICTS = ("holds", "fails", "inconclusive")
# claims.radius: which radius the claims use per activation (bounded ones never blow up)
# ("none": lru, lstm and gru, which have no activation axis and never blow up)
DEFAULT_RADIUS = {"linear": "blowup", "tanh": "lost", "hardtanh": "lost", "none": "lost"}
# claims.delta: the effect size of each reading (a slope of log value vs log m), set before
# any result is read: 0.3 is a change by 1.8x from m = 2 to m = 14
DEFAULT_DELTA = dict.fromkeys(DELTA_KEYS, 0.3)
RADIUS_NAME = {"blowup": "blow-up radius", "lost": "approximation-lost radius"}
RADIUS_SYMBOL = {"blowup": "beta*", "lost": "beta_lost"}
STABLE_PARAMS = ["exp", "softplus", "best"]
EDGE_SHARE = 0.1  # claim "grid": at most this share of crossings at the smallest beta
WORDS = {-1: ("shrinks", "does not shrink"), 1: ("grows", "does not grow")}


def target_role(spec: dict) -> str:
    """exp / pol (linear kernels), readout_pol, teacher (rnn), teacher_transformer, or
    other."""
    if spec["kind"] == "teacher_rnn":
        return "teacher"
    if spec["kind"] == "teacher_transformer":
        return "teacher_transformer"
    if spec.get("kernel") == "pol":
        return "pol" if spec["kind"] == "linear" else "readout_pol"
    if spec.get("kernel") == "exp" and spec["kind"] == "linear":
        return "exp"
    return "other"


@dataclass
class Row:
    """One row of the claims table. A row decided by tests carries its trends and the
    outcome it expects of them (``want``: EFFECT or NO_EFFECT, or a function of the
    outcomes that returns the verdict); a deterministic row carries its verdict."""

    claim: str
    setting: str
    reading: str
    measure: str
    expected: str
    measured: str = ""
    trends: list[Trend] = field(default_factory=list)
    want: object = None
    verdict: str | None = None
    test: str = ""


@dataclass
class ClaimContext:
    """What every claim reads: the first norm's points, the target roles, the settings of
    the config's ``claims`` section and the grid; trends are built once and shared."""

    training: pd.DataFrame
    radius: pd.DataFrame
    points: pd.DataFrame
    memory_fit: pd.DataFrame
    specs: dict[str, dict]
    thresholds: dict
    grid: Grid
    norm: str
    roles: dict[str, str] = field(init=False)
    seed_slopes: pd.DataFrame | None = None  # seed_table(points), when already computed
    _trends: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        for name in ("training", "radius", "memory_fit"):
            setattr(self, name, with_family(getattr(self, name)))
        self.roles = {name: target_role(spec) for name, spec in self.specs.items()}
        if self.seed_slopes is None:
            self.seed_slopes = seed_table(self.points)

    @property
    def alpha(self) -> float:
        return float(self.thresholds.get("alpha", 0.05))

    def delta(self, measure: str) -> float:
        return _delta(self.thresholds.get("delta"), measure)

    def targets(self, role: str) -> list[str]:
        return [t for t, r in self.roles.items() if r == role]

    def kinds(self, target: str, params: list[str] | None = None) -> list[tuple]:
        """The kinds of student (family, structure, param, activation) of ``target``."""
        sub = self.points[self.points["target"] == target]
        if params is not None:
            sub = sub[sub["param"].isin(params)]
        return sorted(set(map(tuple, sub[KEYS[1:]].to_numpy().tolist())))

    def radius_measure(self, activation: str) -> str:
        """The radius ("blowup" or "lost") the claims use for ``activation``."""
        measures = DEFAULT_RADIUS | dict(self.thresholds.get("radius") or {})
        measure = measures.get(activation)
        if measure not in RADII:
            raise ValueError(
                f"claims.radius.{activation} is {measure!r}; expected one of {list(RADII)}"
            )
        return measure

    def exp_reference(self, target: str) -> str | None:
        """The exp target to compare ``target`` with: one of the same horizon T if any."""
        exps = self.targets("exp")
        same_t = [t for t in exps if self.specs[t].get("T") == self.specs[target].get("T")]
        return (same_t or exps or [None])[0]

    def _norm(self, measure: str) -> str:
        return NO_NORM if measure in ("loss", "rate") else self.norm

    def seeds(self, fam: dict, measure: str) -> pd.DataFrame:
        sel = fam | {"norm": self._norm(measure), "measure": measure}
        return _select(self.seed_slopes, sel)

    def trend(self, fam: dict, measure: str) -> Trend:
        """The seed-level trend of ``measure`` with m for one kind of student."""
        key = trend_label(fam, self._norm(measure), measure)
        if key not in self._trends:
            seeds = _seed_dicts(self.seeds(fam, measure))
            delta, sign = self.delta(measure), DIRECTION[measure]
            self._trends[key] = across_seeds(key, seeds, delta, sign, alpha=self.alpha)
        return self._trends[key]

    def contrast(self, fam: dict, reference: dict, measure: str) -> Trend:
        """slope(fam) - slope(reference) per seed (students that share the seed's draws),
        across seeds: the curse as a paired contrast of two targets."""
        key = f"{_label(fam)} - {reference['target']} {self._norm(measure)} {measure}"
        if key not in self._trends:
            mine, other = self.seeds(fam, measure), self.seeds(reference, measure)
            both = mine.merge(other, on="seed", how="inner", suffixes=("", "_ref"))
            paired = [
                {
                    "estimate": r.estimate - r.estimate_ref,
                    "low": r.low - r.high_ref,
                    "high": r.high - r.low_ref,
                    "n": r.n + r.n_ref,
                    "n_bound": r.n_bound + r.n_bound_ref,
                }
                for r in both.itertuples()
            ]
            delta, sign = self.delta("contrast"), DIRECTION[measure]
            self._trends[key] = across_seeds(key, paired, delta, sign, alpha=self.alpha)
        return self._trends[key]

    def ratio(self, num: dict, den: dict, measure: str, limit: float, sign: int) -> Trend:
        """log(radius(num) / radius(den)) matched on width and seed, its median over the
        widths of each seed, across seeds against log(limit) (``sign`` -1: the effect is a
        ratio below the limit; +1: above it). Bounds carry over to the ratio."""
        key = f"{_label(num)} / {_label(den)} {self.norm} {measure} vs {limit}"
        if key not in self._trends:
            pts = self.points[self.points["measure"] == measure]
            cols = ["seed", "width", "value", "bound"]
            a, b = _select(pts, num)[cols], _select(pts, den)[cols]
            both = a.merge(b, on=["seed", "width"], how="inner", suffixes=("", "_den"))
            per_seed = []
            for _, g in both.groupby("seed"):
                y = np.log(g["value"].to_numpy(float) / g["value_den"].to_numpy(float))
                open_up = (g["bound"] == "lower") | (g["bound_den"] == "upper")
                open_down = (g["bound"] == "upper") | (g["bound_den"] == "lower")
                low = np.where(open_down.to_numpy(), -np.inf, y)
                high = np.where(open_up.to_numpy(), np.inf, y)
                per_seed.append(seed_median(y, low, high))
            zero = math.log(limit)
            self._trends[key] = across_seeds(key, per_seed, 0.0, sign, zero, alpha=self.alpha)
        return self._trends[key]


def _select(table: pd.DataFrame, fam: dict) -> pd.DataFrame:
    fam = {k: v for k, v in fam.items() if k in table.columns}
    if not fam:
        return table
    return table.loc[(table[list(fam)] == pd.Series(fam)).all(axis=1)]


def _fmt(v: float) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.3g}"


def _trend_text(t: Trend, what: str = "slope") -> str:
    """estimate [CI], the estimate's bounds where values are censored, seeds, censoring."""
    text = f"{what} {_fmt(t.estimate)} [{_fmt(t.ci_low)}, {_fmt(t.ci_high)}]"
    if t.n_bound:
        text += f" (bounds {_fmt(t.bound_low)}..{_fmt(t.bound_high)})"
    share = t.censored_share
    share_text = f"{share:.0%}" if np.isfinite(share) else "n/a"
    return text + f", {t.n_seeds} seeds, {t.n_values} values, {share_text} censored"


def _family(target: str, *kind: str) -> tuple[dict, str]:
    """The selection {target, family, structure, param, activation} and its label."""
    fam = dict(zip(KEYS, (target, *kind), strict=True))
    return fam, _label(fam)


def _label(fam: dict) -> str:
    """target/family/structure/param/activation, without the axes that read "none"."""
    return "/".join(str(fam[k]) for k in KEYS if k in fam and fam[k] != "none")


def _slope_row(ctx, claim, fam, setting, measure, want, contrast_with=None) -> Row:
    """A row on the slope of ``measure`` with m (or its contrast with ``contrast_with``):
    ``want`` EFFECT (shrinks / grows) or NO_EFFECT."""
    sign, delta = DIRECTION[measure], ctx.delta("contrast" if contrast_with else measure)
    effect, none = WORDS[sign]
    if contrast_with is None:
        t, subject, reading = ctx.trend(fam, measure), measure, READING[measure]
    else:
        t = ctx.contrast(fam, contrast_with, measure)
        subject = f"{measure} slope({fam['target']}) - slope({contrast_with['target']})"
        reading = f"contrast of {READING[measure]}"
        effect, none = ("< 0", ">= 0") if sign < 0 else ("> 0", "<= 0")
    if want == EFFECT:
        where = "below 0" if sign < 0 else "above 0"
        bound = f"<= {-delta:g}" if sign < 0 else f">= {delta:g}"
        expected = f"{subject} {effect} (CI {where}, estimate {bound})"
    else:
        where = f"above {-delta:g}" if sign < 0 else f"below {delta:g}"
        expected = f"{subject} {none} (CI {where})"
    what = "difference" if contrast_with else "slope"
    return Row(claim, setting, reading, measure, expected, _trend_text(t, what), [t], want)


def _ratio_row(ctx, claim, fam, den, setting, measure, limit, sign) -> Row:
    """A row on radius(fam) / radius(den) against ``limit`` (sign -1: below, +1: above)."""
    t = ctx.ratio(fam, den, measure, limit, sign)
    sym = RADIUS_SYMBOL[measure]
    side = "<=" if sign < 0 else ">="
    expected = f"{sym}({_label(fam)}) {side} {limit:g} x {sym}({_label(den)}) (median over m)"
    measured = _trend_text(t, "log ratio") + f"; {_radius_detail(ctx, fam, measure)}"
    return Row(claim, setting, RADIUS_NAME[measure], measure, expected, measured, [t], EFFECT)


def _radius_detail(ctx: ClaimContext, fam: dict, measure: str) -> str:
    """Blow-up: what the draws crossed; lost: how many students lose it unperturbed."""
    radius = _select(ctx.radius, fam)
    if measure == "blowup":
        neg, euler = radius["blowup_eig_negative"].sum(), radius["blowup_eig_euler"].sum()
        return f"draws past beta* with an eigenvalue < 0: {neg:.0f}, > 2/dt: {euler:.0f}"
    at_zero = int(((radius["beta_lost"] == 0) & ~radius["lost_censored"].astype(bool)).sum())
    return f"worse than the zero predictor at beta=0: {at_zero} of {len(radius)}"


# -- rows shared by several claims
def _stable_rows(ctx: ClaimContext, claim: str, target: str) -> list[Row]:
    """Every kind of student on ``target``: neither its radius nor the crossings shrink,
    and E_m(beta0) does not grow with m."""
    rows = []
    for kind in ctx.kinds(target):
        fam, label = _family(target, *kind)
        for measure in (ctx.radius_measure(fam["activation"]), "crossing", "error"):
            rows.append(_slope_row(ctx, claim, fam, f"{label} {measure}", measure, NO_EFFECT))
    return rows


def _curse_rows(ctx: ClaimContext, claim: str, target: str) -> list[Row]:
    """The direct kinds of ``target``: (2a: loss falls,) {claim}b: radius well below the
    exp target's, {claim}c: crossings shrink and E_m(beta0) grows, within the target and
    against the exp target (the paired contrast)."""
    rows, exp_ref = [], ctx.exp_reference(target)
    for kind in ctx.kinds(target, ["direct"]):
        fam, label = _family(target, *kind)
        if claim == "2":
            rows.append(_slope_row(ctx, "2a", fam, label, "loss", EFFECT))
        measure = ctx.radius_measure(fam["activation"])
        ref = None if exp_ref is None else fam | {"target": exp_ref}
        if ref is None:
            rows.append(_no_exp_row(f"{claim}b", label, measure))
        else:
            limit = ctx.thresholds["blowup_ratio"]
            rows.append(_ratio_row(ctx, f"{claim}b", fam, ref, label, measure, limit, -1))
        for m in ("crossing", "error"):
            rows.append(_slope_row(ctx, f"{claim}c", fam, f"{label} {m}", m, EFFECT))
            if ref is not None:
                setting = f"{label} - {exp_ref} {m}"
                rows.append(_slope_row(ctx, f"{claim}c", fam, setting, m, EFFECT, ref))
    return rows


def _no_exp_row(claim: str, setting: str, measure: str) -> Row:
    expected = f"{RADIUS_NAME[measure]} well below the exp target's"
    row = Row(claim, setting, RADIUS_NAME[measure], measure, expected, "no exp target")
    row.verdict, row.test = "inconclusive", "not evaluated: no exp target in this config"
    return row


# -- the claims (method §3, "expected pattern"): each takes the context, returns its rows
def claim_1(ctx: ClaimContext) -> list[Row]:
    """Claim 1, exp target: stable approximation. For every kind of student, the radius
    configured for its activation and the crossings do not shrink with m, and E_m(beta0)
    does not grow (each an equivalence test against delta)."""
    return [row for target in ctx.targets("exp") for row in _stable_rows(ctx, "1", target)]


def claim_2(ctx: ClaimContext) -> list[Row]:
    """Claim 2, pol target with the direct parameterisation: the curse of memory.

    Per kind of student: 2a the test loss falls with m; 2b the configured radius is below
    blowup_ratio x the exp target's (median over m of the log ratio, across seeds); 2c the
    crossings shrink and E_m(beta0) grows with m, each also as the paired contrast
    slope(pol) - slope(exp) over seeds.
    """
    return [row for target in ctx.targets("pol") for row in _curse_rows(ctx, "2", target)]


def claim_3(ctx: ClaimContext) -> list[Row]:
    """Claim 3, pol target with exp/softplus/best: stable again. Per kind of student: the
    configured radius is at least later_ratio x direct's (bounds count: a radius never
    reached on the grid is at least beta_max); the crossings do not shrink, also against
    the exp target; E_m(beta0) does not grow."""
    rows = []
    for target in ctx.targets("pol"):
        exp_ref = ctx.exp_reference(target)
        for kind in ctx.kinds(target, STABLE_PARAMS):
            fam, label = _family(target, *kind)
            measure, later = ctx.radius_measure(fam["activation"]), ctx.thresholds["later_ratio"]
            direct = fam | {"param": "direct"}
            if len(_select(ctx.points, direct)):
                rows.append(_ratio_row(ctx, "3", fam, direct, label, measure, later, 1))
            rows.append(_slope_row(ctx, "3", fam, f"{label} crossing", "crossing", NO_EFFECT))
            if exp_ref is not None:
                ref, setting = fam | {"target": exp_ref}, f"{label} - {exp_ref} crossing"
                rows.append(_slope_row(ctx, "3", fam, setting, "crossing", NO_EFFECT, ref))
            rows.append(_slope_row(ctx, "3", fam, f"{label} error", "error", NO_EFFECT))
    return rows


def claim_4(ctx: ClaimContext) -> list[Row]:
    """Claim 4, memory. Every finite student's memory decays exponentially; the theorem's
    content is how the rate behaves as m grows: the students' fitted decay rate does not
    fall on exp (bounded below), falls towards 0 on pol. Per target, its memory fits the
    decay its kernel has (deterministic: the better of the two tail fits)."""
    rows = []
    students = ctx.memory_fit[ctx.memory_fit["kind"] == "student"]
    want = {"exp": NO_EFFECT, "teacher": NO_EFFECT, "pol": EFFECT, "readout_pol": EFFECT}
    for target, role in ctx.roles.items():
        if role not in want:
            continue
        for kind in ctx.kinds(target):
            fam, label = _family(target, *kind)
            if not len(ctx.seeds(fam, "rate")):
                continue
            row = _slope_row(ctx, "4", fam, f"{label} students", "rate", want[role])
            decays = _select(with_family(students), fam)["decay"].value_counts()
            row.measured += "; tail fits: " + ", ".join(f"{n} {d}" for d, n in decays.items())
            rows.append(row)
    decay_of = {"pol": "polynomial", "readout_pol": "polynomial"}
    decay_of |= {"exp": "exponential", "teacher": "exponential"}
    for _, fit in ctx.memory_fit[ctx.memory_fit["kind"] == "target"].iterrows():
        decay = decay_of.get(ctx.roles.get(fit["subject"], "other"))
        if decay:
            measured = f"{fit['decay']} (R2 exp {_fmt(fit['fit_exp'])}, pol {_fmt(fit['fit_pol'])})"
            setting, expected = f"target {fit['subject']}", f"memory fits {decay}"
            row = Row("4", setting, "target memory fit", "memory", expected, measured)
            row.verdict = "holds" if fit["decay"] == decay else "fails"
            row.test = "deterministic: the better tail fit (R2) of the target's memory"
            rows.append(row)
    return rows


def claim_5(ctx: ClaimContext) -> list[Row]:
    """Claim 5, nonlinear targets: nonlinear_readout(pol) like claim 2 (rows 5b, 5c),
    teacher_rnn like claim 1 (rows 5); one inconclusive row when the config has neither."""
    readout, teachers = ctx.targets("readout_pol"), ctx.targets("teacher")
    rows = [row for target in readout for row in _curse_rows(ctx, "5", target)]
    rows += [row for target in teachers for row in _stable_rows(ctx, "5", target)]
    if not readout and not teachers:
        expected = "nonlinear_readout(pol) like 2, teacher_rnn like 1"
        row = Row("5", "nonlinear targets", "none", "none", expected, "no nonlinear target")
        row.verdict, row.test = "inconclusive", "not evaluated: no nonlinear target in this config"
        rows.append(row)
    return rows


def claim_grid(ctx: ClaimContext) -> list[Row]:
    """Claim "grid": the beta grid starts early enough to resolve the crossings.

    A crossing at the grid's smallest beta > 0 only says it lies somewhere in (0, beta_min]
    (an upper bound). Measured: of all crossed pairs, how many sit at beta_min; holds when
    that share is <= EDGE_SHARE (10%); inconclusive without crossings.
    """
    expected = f"at most {EDGE_SHARE:.0%} of crossings at the grid's smallest beta"
    setting = f"all crossings (beta_min {_fmt(ctx.grid.beta_min)})"
    cross = ctx.points[ctx.points["measure"] == "crossing"]
    crossed = cross[cross["bound"] != "lower"]
    row = Row("grid", setting, "grid", "grid", expected, measured="")
    row.test = "deterministic: share of crossings at the grid's smallest beta"
    if len(crossed) == 0:
        row.measured, row.verdict = "0 of 0 (no crossing)", "inconclusive"
        return [row]
    edge = int((crossed["bound"] == "upper").sum())
    share = edge / len(crossed)
    row.measured = f"{edge} of {len(crossed)} ({100 * share:.3g}%)"
    row.verdict = "holds" if share <= EDGE_SHARE else "fails"
    return [row]


# -- claim F: the reference's table of model families (method §6)
# its verdicts (exp target, pol target) per row; lstm and gru are not in it
REFERENCE_TABLE = {
    "diagonal RNN": ("stable", "unstable"),
    "vanilla RNN": ("stable", "unstable"),
    "state-space model": ("stable", "unstable"),
    "linear recurrent unit": ("stable", "unstable"),
    "stable reparameterisation": ("stable", "stable"),
}
# what the theory predicts: a family that is a stable reparameterisation by construction
# (the LRU's exp-exp map keeps |lambda| < 1 for every raw parameter) is stable on pol too,
# unlike the reference's table; lstm and gru are outside the theorem
THEORY_TABLE = REFERENCE_TABLE | {
    families.get(name).display_name: ("stable", "stable")
    for name in families.names()
    if families.get(name).stable_by_construction
}
# each registered family's display name (rnn's rows are split by structure: reference_row)
FAMILY_NAMES = {name: families.get(name).display_name for name in families.names()}


def reference_row(family: str, structure: str, param: str) -> str:
    """The row of the reference's table a kind of student belongs to (or its own name: a
    family the registry does not know here, e.g. a plug-in in a process that never imported
    it)."""
    if param in STABLE_PARAMS:
        return "stable reparameterisation"
    if family not in families.names():
        return family
    return families.get(family).reference_row(structure)


def _cell_verdict(outcomes: list[str]) -> str:
    """ "unstable" when the radius or the crossings shrink, "stable" when neither does
    (both shown), else "inconclusive"."""
    if EFFECT in outcomes:
        return "unstable"
    if all(o == NO_EFFECT for o in outcomes):
        return "stable"
    return "inconclusive"


def family_rows(ctx: ClaimContext) -> list[Row]:
    """Claim F, the reference's table of model families: one row per kind of student and
    exp/pol target with an expectation (the theory's cell; the reference's beside it).
    The cell is measured by the configured radius and the crossings (``_cell_verdict``)."""
    rows = []
    for column, role in enumerate(("exp", "pol")):
        for target in ctx.targets(role):
            for kind in ctx.kinds(target):
                fam, label = _family(target, *kind)
                name = reference_row(*kind[:3])
                theory, reference = THEORY_TABLE.get(name), REFERENCE_TABLE.get(name)
                if theory is None:  # lstm, gru: measured in families.tsv, nothing to test
                    continue
                measure = ctx.radius_measure(fam["activation"])
                trends = [ctx.trend(fam, measure), ctx.trend(fam, "crossing")]
                expected = theory[column]
                if reference and reference[column] != expected:
                    expected += f" (the reference's table: {reference[column]})"
                measured = (
                    f"{RADIUS_SYMBOL[measure]} {_trend_text(trends[0])}; "
                    f"crossing {_trend_text(trends[1])}"
                )
                row = Row("F", f"{name}: {label}", "radius and crossings", measure, expected)
                row.measured, row.trends = measured, trends
                row.want = _cell_rule(theory[column])
                rows.append(row)
    return rows


def _cell_rule(expected: str):
    def rule(outcomes: list[str]) -> tuple[str, str]:
        cell = _cell_verdict(outcomes)
        if cell == "inconclusive":
            return "inconclusive", cell
        return ("holds" if cell == expected else "fails"), cell

    return rule


# claim "filter": what a teacher's memory function predicts of stable approximation
FILTER_CELL = {"exponential": "stable", "polynomial": "unstable", "non-decaying": "unstable"}


def claim_filter(ctx: ClaimContext) -> list[Row]:
    """Claim "filter": stable approximation tells which memory a black-box target has.

    For every teacher target (teacher_rnn, teacher_transformer) and kind of student, the
    cell the stability readings give (the configured radius and the crossings, as claim F)
    against the cell the teacher's memory function predicts (the better tail fit:
    exponential -> stable; polynomial or non-decaying -> unstable). Holds when they
    agree; inconclusive when either is undetermined.
    """
    fits = ctx.memory_fit[ctx.memory_fit["kind"] == "target"].set_index("subject")
    rows = []
    for target in ctx.targets("teacher") + ctx.targets("teacher_transformer"):
        decay = fits["decay"].get(target, "undetermined")
        cell = FILTER_CELL.get(decay)
        for kind in ctx.kinds(target):
            fam, label = _family(target, *kind)
            measure = ctx.radius_measure(fam["activation"])
            expected = f"{cell or 'no expectation'} (its memory function: {decay})"
            row = Row("filter", label, "radius and crossings vs memory", measure, expected)
            row.trends = [ctx.trend(fam, measure), ctx.trend(fam, "crossing")]
            row.measured = (
                f"{RADIUS_SYMBOL[measure]} {_trend_text(row.trends[0])}; "
                f"crossing {_trend_text(row.trends[1])}"
            )
            if cell is None:
                row.trends, row.verdict = [], "inconclusive"
                row.test = f"no expectation: the teacher's memory function is {decay}"
            else:
                row.want = _cell_rule(cell)
            rows.append(row)
    return rows


CLAIMS: list[Callable[[ClaimContext], list[Row]]] = [
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
    family_rows,
    claim_filter,
    claim_grid,
]


def _resolve(row: Row, n_tests: int, correction: str) -> dict:
    """The row's verdict and the test that decided it, after ``verdicts.decide``."""
    out = {c: getattr(row, c) for c in CLAIM_COLUMNS[:6]}
    out |= {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    out |= {"n_seeds": 0, "df": 0, "censored_share": math.nan, "p_adj": math.nan}
    if row.verdict is not None:
        return out | {"test": row.test, "verdict": row.verdict}
    adjust = f"Holm over {n_tests} tests" if correction == "holm" else "no correction"
    base = f"t across seeds, {adjust}"
    if len(row.trends) == 1:
        t = row.trends[0]
        out |= {"estimate": t.estimate, "ci_low": t.ci_low, "ci_high": t.ci_high}
        out |= {"n_seeds": t.n_seeds, "df": t.df, "censored_share": t.censored_share}
        out["p_adj"] = t.p_adj
    outcomes = [t.outcome for t in row.trends]
    if callable(row.want):
        verdict, cell = row.want(outcomes)
        shown = ", ".join(f"{t.key}: {t.outcome} (p_adj {_fmt(t.p_adj)})" for t in row.trends)
        return out | {"test": f"{base}; cell {cell} ({shown})", "verdict": verdict}
    (t,) = row.trends
    other = NO_EFFECT if row.want == EFFECT else EFFECT
    verdict = {row.want: "holds", other: "fails"}.get(t.outcome, "inconclusive")
    if t.n_seeds < 2:
        test = f"too few seeds ({t.n_seeds}) for a CI"
    elif t.outcome == EFFECT:
        test = f"{base}: effect shown (p_adj {_fmt(t.p_adj)})"
    elif t.outcome == NO_EFFECT:
        test = f"{base}: equivalence shown (p_adj {_fmt(t.p_adj)})"
    else:
        test = f"{base}: neither effect nor equivalence shown (p_adj {_fmt(t.p_adj)})"
    return out | {"test": test, "verdict": verdict}


@dataclass
class Evaluation:
    """The claims table, the slopes behind it (every norm) and the families table."""

    claims: pd.DataFrame
    slopes: pd.DataFrame
    families: pd.DataFrame


def all_points(training, radius, crossings, perturbation, memory_fit, grid, rate_floor):
    """Every reading's points, every norm."""
    radius, crossings = with_family(radius), with_family(crossings)
    perturbation, training = with_family(perturbation), with_family(training)
    parts = [radius_points(radius, m, grid) for m in RADII]
    parts += [crossing_points(crossings, grid), error_points(perturbation, radius, grid)]
    parts += [loss_points(training)]
    if len(memory_fit) and (memory_fit["kind"] == "student").any():
        parts.append(rate_points(memory_fit, rate_floor))
    return pd.concat(parts, ignore_index=True)


def evaluate(
    training: pd.DataFrame,
    radius: pd.DataFrame,
    crossings: pd.DataFrame,
    perturbation: pd.DataFrame,
    memory_fit: pd.DataFrame,
    specs: dict[str, dict],
    thresholds: dict,
    grid: Grid,
    rate_floor: float = 1e-4,
) -> Evaluation:
    """The claims table, its slopes and the families table: every claim of ``CLAIMS``, its
    trends decided together (``verdicts.decide``, ``claims.correction`` over the table).

    The claims use the first perturbation norm; the slopes cover every norm.
    """
    points = all_points(training, radius, crossings, perturbation, memory_fit, grid, rate_floor)
    seeds = seed_table(points)  # once, for the slopes of every norm and the claims' first
    alpha = float(thresholds.get("alpha", 0.05))
    slopes = slope_table(points, thresholds.get("delta"), alpha, seeds=seeds)
    norm = with_family(radius)["norm"].iloc[0]
    first = points[points["norm"].isin([norm, NO_NORM])]
    ctx = ClaimContext(
        training=training,
        radius=with_family(radius).query("norm == @norm"),
        points=first,
        memory_fit=memory_fit,
        specs=specs,
        thresholds=thresholds,
        grid=grid,
        norm=norm,
        seed_slopes=seeds[seeds["norm"].isin([norm, NO_NORM])],
    )
    rows = [row for claim in CLAIMS for row in claim(ctx)]
    trends = [t for row in rows for t in row.trends]
    correction = thresholds.get("correction", "holm")
    decide(trends, ctx.alpha, correction)
    n_tests = 2 * len({id(t) for t in trends})
    table = pd.DataFrame([_resolve(r, n_tests, correction) for r in rows], columns=CLAIM_COLUMNS)
    families = families_table(ctx, table)
    return Evaluation(table, slopes, families)


def families_table(ctx: ClaimContext, claims: pd.DataFrame) -> pd.DataFrame:
    """The reference's table rebuilt from measurements: one row per kind of student, the
    cell per target role with the slopes behind it, the theory's and the reference's cell,
    and the claim-4 decay-rate verdict of its students (lstm and gru included)."""
    rows = {}
    memory = claims[(claims["claim"] == "4") & claims["setting"].str.endswith(" students")]
    memory = dict(
        zip(memory["setting"].str.removesuffix(" students"), memory["verdict"], strict=True)
    )
    for column, role in enumerate(("exp", "pol")):
        for target in ctx.targets(role):
            for kind in ctx.kinds(target):
                fam, label = _family(target, *kind)
                name = reference_row(*kind[:3])
                measure = ctx.radius_measure(fam["activation"])
                trends = [ctx.trend(fam, measure), ctx.trend(fam, "crossing")]
                row = rows.setdefault(
                    (name, *kind), dict(zip(["model", *KEYS[1:]], (name, *kind), strict=True))
                )
                theory, reference = THEORY_TABLE.get(name), REFERENCE_TABLE.get(name)
                row[f"{role}_verdict"] = _cell_verdict([t.outcome for t in trends])
                row[f"{role}_theory"] = theory[column] if theory else ""
                row[f"{role}_reference"] = reference[column] if reference else ""
                row[f"{role}_radius"] = f"{measure}: {_trend_text(trends[0])}"
                row[f"{role}_crossing"] = _trend_text(trends[1])
                if label in memory:
                    row[f"{role}_memory"] = f"decay rate: {memory[label]}"
    order = [*REFERENCE_TABLE, *FAMILY_NAMES.values()]  # the reference's rows first
    out = sorted(
        rows.values(), key=lambda r: order.index(r["model"]) if r["model"] in order else len(order)
    )
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------- seed halves
def seed_halves(tables: dict, evaluate_kwargs: dict) -> pd.DataFrame:
    """The claims table of each half of the seeds (sorted; the first half gets the odd one
    out), row by row, and which rows contradict: one half holds where the other fails, on
    a row decided by a test across seeds (a deterministic row, such as the share of
    crossings at the grid's edge, may differ between halves without contradiction).

    ``tables``: training, radius, crossings, perturbation, memory_fit (target rows kept in
    both halves)."""
    seeds = sorted(int(s) for s in tables["training"]["seed"].unique())
    columns = ["claim", "setting", "reading", "measure", "verdict_a", "seeds_a"]
    columns += ["verdict_b", "seeds_b", "decided_by", "contradicts"]
    if len(seeds) < 2:  # one seed cannot be split: no row to compare
        return pd.DataFrame(columns=columns)
    cut = (len(seeds) + 1) // 2
    halves, out = (seeds[:cut], seeds[cut:]), None
    for name, half in zip(("a", "b"), halves, strict=True):
        part = {}
        for key, df in tables.items():
            if "seed" in df.columns:
                keep = df["seed"].isna() | df["seed"].isin(half)
                if "kind" in df.columns:
                    keep |= df["kind"] == "target"
                df = df[keep]
            part[key] = df
        claims = evaluate(**part, **evaluate_kwargs).claims
        cols = ["claim", "setting", "reading", "measure"]
        tested = claims["test"].str.startswith("t across seeds")
        claims = claims[[*cols, "verdict"]].rename(columns={"verdict": f"verdict_{name}"})
        claims[f"seeds_{name}"] = " ".join(map(str, half))
        claims[f"tested_{name}"] = tested
        out = claims if out is None else out.merge(claims, on=cols, how="outer")
    tested = out.pop("tested_a").fillna(False) | out.pop("tested_b").fillna(False)
    out["decided_by"] = np.where(tested.astype(bool), "test", "deterministic")
    opposite = ((out["verdict_a"] == "holds") & (out["verdict_b"] == "fails")) | (
        (out["verdict_a"] == "fails") & (out["verdict_b"] == "holds")
    )
    return out.assign(contradicts=opposite & (out["decided_by"] == "test"))[columns]
