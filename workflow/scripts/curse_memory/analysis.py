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

from .curves import (
    approximation_lost_radius,
    crossing_point,
    monotone_envelope,
    stability_radius,
)
from .tables import with_family

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


# ---------------------------------------------------------------------------- slopes
def log_slope(width, value, seed=None) -> dict:
    """Slope of log(value) against log(width), pooled over seeds, with a 95% CI.

    The CI is the OLS one (t distribution, n - 2 degrees of freedom); with several seeds
    the seed-to-seed spread enters through the pooled residuals. Non-positive or
    non-finite values are dropped. Fewer than 2 distinct widths gives NaN.
    """
    x, y = np.asarray(width, float), np.asarray(value, float)
    ok = np.isfinite(y) & (y > 0) & (x > 0)
    x, y = np.log(x[ok]), np.log(y[ok])
    out = {"slope": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": int(ok.sum())}
    if len(np.unique(x)) < 2:
        return out
    fit = stats.linregress(x, y)
    out["slope"] = float(fit.slope)
    if len(x) > 2:
        half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr
        out["ci_low"], out["ci_high"] = float(fit.slope - half), float(fit.slope + half)
    return out


def radius_values(radius: pd.DataFrame, measure: str, beta_max: float) -> pd.Series:
    """The ``measure`` radius ("blowup" or "lost") of every row, censored ones at beta_max."""
    value, censored = RADII[measure]
    return radius[value].where(~radius[censored].astype(bool), beta_max)


def slope_table(radius: pd.DataFrame, crossings: pd.DataFrame, beta_max: float) -> pd.DataFrame:
    """Slopes of log beta vs log m per family and norm, for every stability measure.

    The measures: "blowup" (beta*), "lost" (approximation-lost radius) and "crossing". A
    censored radius (nothing happened on the grid) or a crossing that never happens is only
    known to lie beyond the grid: it enters the fit at ``beta_max``, a lower bound, and is
    counted in ``n_censored``. Crossings of non-monotone pairs mean nothing and are dropped.
    """
    radius, crossings = with_family(radius), with_family(crossings)
    radii = [
        radius.assign(
            measure=measure,
            beta=radius_values(radius, measure, beta_max),
            cens=radius[censored].astype(bool),
        )
        for measure, (_, censored) in RADII.items()
    ]
    cross = crossings[crossings["status"] != "not_monotone"]
    cross = cross.assign(
        measure="crossing",
        beta=cross["beta_cross"].where(cross["status"] == "crossed", beta_max),
        cens=cross["status"] == "never",
    )
    rows = []
    for key, g in pd.concat([*radii, cross]).groupby([*KEYS, "norm", "measure"], sort=True):
        row = dict(zip([*KEYS, "norm", "measure"], key, strict=True))
        row |= log_slope(g["width"], g["beta"])
        rows.append(row | {"n_censored": int(g["cens"].sum())})
    columns = [*KEYS, "norm", "measure", "slope", "ci_low", "ci_high", "n", "n_censored"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------- claims
CLAIM_COLUMNS = ["claim", "setting", "measure", "expected", "measured", "holds"]
# claims.radius: which radius claims 2b, 3 and 5b use per activation (bounded ones never blow up)
# ("none": lru, lstm and gru, which have no activation axis and never blow up)
DEFAULT_RADIUS = {"linear": "blowup", "tanh": "lost", "hardtanh": "lost", "none": "lost"}
RADIUS_NAME = {"blowup": "blow-up radius", "lost": "approximation-lost radius"}
RADIUS_SYMBOL = {"blowup": "beta*", "lost": "beta_lost"}
STABLE_PARAMS = ["exp", "softplus", "best"]
EDGE_SHARE = 0.1  # claim "grid": at most this share of crossings at the smallest beta


def target_role(spec: dict) -> str:
    """exp / pol (linear kernels), readout_pol, teacher, or other."""
    if spec["kind"] == "teacher_rnn":
        return "teacher"
    if spec.get("kernel") == "pol":
        return "pol" if spec["kind"] == "linear" else "readout_pol"
    if spec.get("kernel") == "exp" and spec["kind"] == "linear":
        return "exp"
    return "other"


@dataclass
class ClaimContext:
    """What every claim reads: the first norm's tables, the target roles and the thresholds
    (the config's ``claims`` section), the grid's largest and smallest positive beta."""

    training: pd.DataFrame
    radius: pd.DataFrame
    crossings: pd.DataFrame
    slopes: pd.DataFrame
    memory_fit: pd.DataFrame
    specs: dict[str, dict]
    thresholds: dict
    beta_max: float
    beta_min: float | None = None
    roles: dict[str, str] = field(init=False)

    def __post_init__(self):
        for name in ("training", "radius", "crossings", "slopes", "memory_fit"):
            setattr(self, name, with_family(getattr(self, name)))
        self.roles = {name: target_role(spec) for name, spec in self.specs.items()}

    def targets(self, role: str) -> list[str]:
        return [t for t, r in self.roles.items() if r == role]

    def families(self, target: str, params: list[str] | None = None):
        """The slopes of ``target``, grouped by (family, structure, param, activation)."""
        sub = self.slopes[self.slopes["target"] == target]
        if params is not None:
            sub = sub[sub["param"].isin(params)]
        return sub.groupby(KEYS[1:], sort=True)

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


def _select(table: pd.DataFrame, fam: dict) -> pd.DataFrame:
    return table.loc[(table[list(fam)] == pd.Series(fam)).all(axis=1)]


def _row(claim, setting, measure, expected, measured, holds) -> dict:
    holds = holds if isinstance(holds, str) else ("true" if holds else "false")
    values = (claim, setting, measure, expected, measured, holds)
    return dict(zip(CLAIM_COLUMNS, values, strict=True))


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _slope_text(row: pd.Series) -> str:
    ci = f" [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]" if np.isfinite(row.ci_low) else ""
    return f"slope {_fmt(row.slope)}{ci}, n={row.n}, censored={row.n_censored}"


def _measure_row(slopes: pd.DataFrame, measure: str) -> pd.Series:
    """The slope row of one measure; without one (e.g. every crossing pair not width-
    monotone) a row with no slope and nothing measured."""
    rows = slopes[slopes["measure"] == measure]
    if len(rows):
        return rows.iloc[0]
    empty = {"slope": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    return pd.Series({"measure": measure, **empty, "n_censored": 0})


def _flat(row: pd.Series, threshold: float) -> bool:
    """'Does not shrink': slope >= threshold, or its CI includes 0, or all censored."""
    if row.n and row.n_censored == row.n:
        return True
    if not np.isfinite(row.slope):
        return False
    return row.slope >= threshold or (row.ci_low <= 0 <= row.ci_high)


def _shrinks(row: pd.Series, threshold: float) -> bool:
    """'Shrinks': slope <= threshold with the whole CI below 0."""
    return bool(np.isfinite(row.slope) and row.slope <= threshold and row.ci_high < 0)


def _causes(radius: pd.DataFrame) -> str:
    """What the blown-up draws crossed: an eigenvalue below 0 (the curse's mechanism for
    direct) or above the Euler bound 2/dt (a discretisation blow-up)."""
    neg, euler = int(radius["blowup_eig_negative"].sum()), int(radius["blowup_eig_euler"].sum())
    return f"draws past beta* with an eigenvalue < 0: {neg}, > 2/dt: {euler}"


def _radius_detail(radius: pd.DataFrame, measure: str) -> str:
    """Blow-up: what the draws crossed; lost: how many students lose it unperturbed."""
    if measure == "blowup":
        return _causes(radius)
    at_zero = int(((radius["beta_lost"] == 0) & ~radius["lost_censored"].astype(bool)).sum())
    return f"worse than the zero predictor at beta=0: {at_zero} of {len(radius)}"


def _radius_ratio(
    radius: pd.DataFrame, num: dict, den: dict, beta_max: float, measure: str = "blowup"
) -> pd.Series:
    """radius(num) / radius(den), matched on width and seed; censored radii at beta_max."""

    def pick(sel):
        sub = _select(radius, sel)
        value = radius_values(sub, measure, beta_max)
        return value.set_axis(pd.MultiIndex.from_frame(sub[["width", "seed"]]))

    return (pick(num) / pick(den)).dropna()


def _family(target: str, *kind: str) -> tuple[dict, str]:
    """The selection {target, family, structure, param, activation} and its label."""
    fam = dict(zip(KEYS, (target, *kind), strict=True))
    return fam, _label(fam)


def _label(fam: dict) -> str:
    """target/family/structure/param/activation, without the axes that read "none"."""
    return "/".join(str(fam[k]) for k in KEYS if k in fam and fam[k] != "none")


# -- rows shared by several claims
def _stable_rows(ctx: ClaimContext, claim: str, target: str) -> list[dict]:
    """Every family of ``target``: no stability measure shrinks with m."""
    flat, rows = ctx.thresholds["flat_slope"], []
    for kind, g in ctx.families(target):
        for measure in (*RADII, "crossing"):
            row = _measure_row(g, measure)
            rows.append(
                _row(
                    claim,
                    f"{_family(target, *kind)[1]} {measure}",
                    measure,
                    f"{measure} radius does not shrink with m (slope >= {flat} or CI has 0)",
                    _slope_text(row),
                    _flat(row, flat),
                )
            )
    return rows


def _loss_falls(ctx: ClaimContext, fam: dict, setting: str) -> dict:
    """2a: the median test loss over seeds falls with every width step."""
    loss = _select(ctx.training, fam).groupby("width")["test_loss"].median().sort_index()
    falls = bool(len(loss) > 1 and (np.diff(loss.to_numpy()) < 0).all())
    measured = " > ".join(f"m={w}: {_fmt(v)}" for w, v in loss.items())
    return _row("2a", setting, "loss", "test loss falls with width", measured, falls)


def _radius_below_exp(ctx: ClaimContext, claim: str, fam: dict, setting: str) -> dict:
    """{claim}b: the family's radius <= blowup_ratio x the exp target's, at every m."""
    measure = ctx.radius_measure(fam["activation"])
    exp_ref = ctx.exp_reference(fam["target"])
    if exp_ref is None:
        expected = f"{RADIUS_NAME[measure]} well below the exp target's"
        return _row(claim, setting, measure, expected, "no exp target in this config", "n/a")
    ratio = _radius_ratio(ctx.radius, fam, fam | {"target": exp_ref}, ctx.beta_max, measure)
    limit, sym = ctx.thresholds["blowup_ratio"], RADIUS_SYMBOL[measure]
    return _row(
        claim,
        setting,
        measure,
        f"{sym}(pol) <= {limit} x {sym}({exp_ref}) at every m",
        f"ratio max {_fmt(ratio.max())}, median {_fmt(ratio.median())}; "
        + _radius_detail(_select(ctx.radius, fam), measure),
        bool(len(ratio) and ratio.max() <= limit),
    )


def _curse_rows(ctx: ClaimContext, claim: str, target: str) -> list[dict]:
    """The direct families of ``target``: (2a: loss falls,) {claim}b: radius well below
    the exp target's, {claim}c: crossings shrink."""
    shrink, rows = ctx.thresholds["shrink_slope"], []
    for kind, g in ctx.families(target, ["direct"]):
        fam, setting = _family(target, *kind)
        if claim == "2":
            rows.append(_loss_falls(ctx, fam, setting))
        rows.append(_radius_below_exp(ctx, f"{claim}b", fam, setting))
        row = _measure_row(g, "crossing")
        rows.append(
            _row(
                f"{claim}c",
                f"{setting} crossing",
                "crossing",
                f"crossings shrink with m (slope <= {shrink}, CI below 0)",
                _slope_text(row),
                _shrinks(row, shrink),
            )
        )
    return rows


# -- the claims (method §3, "expected pattern"): each takes the context, returns its rows
def claim_1(ctx: ClaimContext) -> list[dict]:
    """Claim 1, exp target: stable approximation.

    Expected: for every family on an exp target, neither radius (blow-up, approximation
    lost) nor the crossings shrink as m grows. Measured: the slope of log beta vs log m
    (censored at beta_max); holds when slope >= flat_slope, or its CI has 0, or all censored.
    """
    return [row for target in ctx.targets("exp") for row in _stable_rows(ctx, "1", target)]


def claim_2(ctx: ClaimContext) -> list[dict]:
    """Claim 2, pol target with the direct parameterisation: the curse of memory.

    Expected, per family: 2a the median test loss falls with m; 2b the radius configured for
    the activation (claims.radius) is <= blowup_ratio x the exp target's (same T, matched on
    width and seed, censored at beta_max) at every m; 2c the crossings shrink (slope <=
    shrink_slope with the CI below 0).
    """
    return [row for target in ctx.targets("pol") for row in _curse_rows(ctx, "2", target)]


def _radius_later_than_direct(ctx: ClaimContext, fam: dict, setting: str) -> dict:
    """3: the configured radius is never reached on the grid, or >= later_ratio x direct's."""
    measure, later = ctx.radius_measure(fam["activation"]), ctx.thresholds["later_ratio"]
    mine = _select(ctx.radius, fam)
    censored, sym = mine[RADII[measure][1]].astype(bool), RADIUS_SYMBOL[measure]
    what = "blow-up" if measure == "blowup" else "approximation lost"
    if censored.all():
        expected = f"no {what} on the grid, or far later than direct"
        measured = f"no {what} on the grid (beta <= {_fmt(ctx.beta_max)})"
        return _row("3", f"{setting} {measure}", measure, expected, measured, True)
    ratio = _radius_ratio(ctx.radius, fam, fam | {"param": "direct"}, ctx.beta_max, measure)
    happened = "blew up" if measure == "blowup" else "lost it"
    return _row(
        "3",
        f"{setting} {measure}",
        measure,
        f"{sym}({fam['param']}) >= {later} x {sym}(direct) at every m",
        f"ratio min {_fmt(ratio.min())} ({int((~censored).sum())} of {len(mine)} {happened}; "
        f"{_radius_detail(mine, measure)})",
        bool(len(ratio) and ratio.min() >= later),
    )


def claim_3(ctx: ClaimContext) -> list[dict]:
    """Claim 3, pol target with exp/softplus/best: stable again.

    Expected, per family: the radius configured for the activation is never reached on the
    grid, or is >= later_ratio x direct's at every m (matched on width and seed, censored at
    beta_max); the crossings do not shrink (slope >= flat_slope or CI has 0, as claim 1).
    """
    flat, rows = ctx.thresholds["flat_slope"], []
    for target in ctx.targets("pol"):
        for kind, g in ctx.families(target, STABLE_PARAMS):
            fam, setting = _family(target, *kind)
            rows.append(_radius_later_than_direct(ctx, fam, setting))
            row = _measure_row(g, "crossing")
            expected = f"crossings do not shrink (slope >= {flat} or CI has 0)"
            measured, ok = _slope_text(row), _flat(row, flat)
            rows.append(_row("3", f"{setting} crossing", "crossing", expected, measured, ok))
    return rows


def claim_4(ctx: ClaimContext) -> list[dict]:
    """Claim 4, memory: every trained student's memory decays exponentially; the pol
    targets' polynomially, the exp and teacher targets' exponentially.

    Measured: the better of the two tail fits (memory_fit.tsv) per student, counted per
    family, with the students whose A has a zero eigenvalue (a dead relu unit); per target
    the verdict and both fit qualities.
    """
    students = with_family(ctx.memory_fit[ctx.memory_fit["kind"] == "student"])
    eig = with_family(ctx.training)[[*MODEL, "min_eig"]].assign(known=True)
    students = students.astype({"width": int, "seed": int}).merge(eig, on=MODEL, how="left")
    if students["known"].isna().any():
        raise ValueError("memory_fit.tsv has students that training.tsv does not know")
    rows = []
    for key, g in students.groupby(KEYS, sort=True):
        family = _label(dict(zip(KEYS, key, strict=True)))
        n_exp = int((g["decay"] == "exponential").sum())
        verdicts = g.loc[g["decay"] != "exponential", "decay"].value_counts()
        zero = int((g["min_eig"] <= 0).sum())
        measured = f"{n_exp}/{len(g)} exponential"
        if len(verdicts):
            measured += "; " + ", ".join(f"{n} {v}" for v, n in verdicts.items())
        if zero:
            measured += f"; {zero} with a zero eigenvalue (a dead relu unit)"
        expected = "memory fits exponential better than polynomial"
        rows.append(_row("4", f"{family} students", "memory", expected, measured, n_exp == len(g)))
    want = {"pol": "polynomial", "readout_pol": "polynomial"}
    want |= {"exp": "exponential", "teacher": "exponential"}
    for _, fit in ctx.memory_fit[ctx.memory_fit["kind"] == "target"].iterrows():
        decay = want.get(ctx.roles.get(fit["subject"], "other"))
        if decay:
            measured = f"{fit['decay']} (R2 exp {_fmt(fit['fit_exp'])}, pol {_fmt(fit['fit_pol'])})"
            setting, expected = f"target {fit['subject']}", f"memory fits {decay}"
            rows.append(_row("4", setting, "memory", expected, measured, fit["decay"] == decay))
    return rows


def claim_5(ctx: ClaimContext) -> list[dict]:
    """Claim 5, nonlinear targets: nonlinear_readout(pol) like claim 2 (rows 5b, 5c),
    teacher_rnn like claim 1 (rows 5); one "n/a" row when the config has neither."""
    readout, teachers = ctx.targets("readout_pol"), ctx.targets("teacher")
    rows = [row for target in readout for row in _curse_rows(ctx, "5", target)]
    rows += [row for target in teachers for row in _stable_rows(ctx, "5", target)]
    if not readout and not teachers:
        expected = "nonlinear_readout(pol) like 2, teacher_rnn like 1"
        measured = "not evaluated: no nonlinear target in this config"
        rows.append(_row("5", "nonlinear targets", "none", expected, measured, "n/a"))
    return rows


def claim_grid(ctx: ClaimContext) -> list[dict]:
    """Claim "grid": the beta grid starts early enough to resolve the crossings.

    A crossing at the grid's smallest beta > 0 only says it lies somewhere in (0, beta_min].
    Measured: of all crossed pairs (first norm, every family), how many have beta_cross at
    beta_min; holds when that share is <= EDGE_SHARE (10%); "n/a" without crossings.
    """
    expected = f"at most {EDGE_SHARE:.0%} of crossings at the grid's smallest beta"
    if ctx.beta_min is None:
        return [_row("grid", "all crossings", "grid", expected, "beta_min not given", "n/a")]
    setting = f"all crossings (beta_min {_fmt(ctx.beta_min)})"
    beta = ctx.crossings.loc[ctx.crossings["status"] == "crossed", "beta_cross"].to_numpy(float)
    if len(beta) == 0:
        return [_row("grid", setting, "grid", expected, "0 of 0 (no crossing)", "n/a")]
    edge = int(np.isclose(beta, ctx.beta_min, rtol=1e-9, atol=0).sum())
    share = edge / len(beta)
    measured = f"{edge} of {len(beta)} ({100 * share:.3g}%)"
    return [_row("grid", setting, "grid", expected, measured, share <= EDGE_SHARE)]


# -- claim F: the reference's table of model families (method §6)
# its verdicts (exp target, pol target) per row; lstm and gru are not in it
REFERENCE_TABLE = {
    "diagonal RNN": ("stable", "unstable"),
    "vanilla RNN": ("stable", "unstable"),
    "state-space model": ("stable", "unstable"),
    "linear recurrent unit": ("stable", "unstable"),
    "stable reparameterisation": ("stable", "stable"),
}
FAMILY_NAMES = {"ssm": "state-space model", "lru": "linear recurrent unit"}
FAMILY_NAMES |= {"lstm": "LSTM", "gru": "GRU"}


def reference_row(family: str, structure: str, param: str) -> str:
    """The row of the reference's table a kind of student belongs to (or its own name)."""
    if param in STABLE_PARAMS:
        return "stable reparameterisation"
    if family == "rnn":
        return "diagonal RNN" if structure == "diagonal" else "vanilla RNN"
    return FAMILY_NAMES.get(family, family)


def family_cells(ctx: ClaimContext) -> pd.DataFrame:
    """One cell of the families table per kind of student and exp/pol target: "unstable"
    when the radius the claims use for its activation (claims.radius) or the crossings
    shrink with m (slope <= shrink_slope, CI below 0), "stable" when both do not shrink
    (slope >= flat_slope or CI has 0, as claim 1), else "unclear"; the reference's verdict
    beside it (none for lstm and gru)."""
    shrink, flat, rows = ctx.thresholds["shrink_slope"], ctx.thresholds["flat_slope"], []
    for column, role in enumerate(("exp", "pol")):
        for target in ctx.targets(role):
            for kind, g in ctx.families(target):
                family, structure, param, act = kind
                measure = ctx.radius_measure(act)
                radius = _measure_row(g, measure)
                cross = _measure_row(g, "crossing")
                if _shrinks(radius, shrink) or _shrinks(cross, shrink):
                    verdict = "unstable"
                elif _flat(radius, flat) and _flat(cross, flat):
                    verdict = "stable"
                else:
                    verdict = "unclear"
                name = reference_row(family, structure, param)
                reference = REFERENCE_TABLE.get(name)
                rows.append(
                    {"model": name, "role": role, "target": target}
                    | dict(zip(KEYS[1:], kind, strict=True))
                    | {"verdict": verdict, "reference": reference[column] if reference else ""}
                    | {"measure": measure, "radius_slope": _slope_text(radius)}
                    | {"crossing_slope": _slope_text(cross)}
                )
    return pd.DataFrame(rows)


def claim_families(ctx: ClaimContext) -> list[dict]:
    """Claim F, the reference's table of model families: each kind of student is stable on
    the exp target and unstable on the pol target, a stable reparameterisation stable on
    both (``family_cells``); lstm and gru are measured, not in the reference ("n/a")."""
    rows = []
    for _, cell in family_cells(ctx).iterrows():
        fam = {"target": cell["target"]} | {k: cell[k] for k in KEYS[1:]}
        expected = cell["reference"] or "not in the reference's table"
        measured = (
            f"{cell['verdict']}: {RADIUS_SYMBOL[cell['measure']]} {cell['radius_slope']}; "
            f"crossing {cell['crossing_slope']}"
        )
        holds = cell["verdict"] == cell["reference"] if cell["reference"] else "n/a"
        setting = f"{cell['model']}: {_label(fam)}"
        rows.append(_row("F", setting, cell["measure"], expected, measured, holds))
    return rows


def families_table(claims: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The reference's table rebuilt from measurements: one row per kind of student, the
    verdict per target role with the slopes behind it, the reference's verdict, and the
    claim-4 memory verdict of its students."""
    memory = claims[(claims["claim"] == "4") & claims["setting"].str.endswith(" students")]
    names = memory["setting"].str.removesuffix(" students")
    memory = dict(zip(names, memory["measured"], strict=True))
    rows = []
    for kind, g in cells.groupby(["model", *KEYS[1:]], sort=False):
        row = dict(zip(["model", *KEYS[1:]], kind, strict=True))
        for _, cell in g.iterrows():
            role = cell["role"]
            row[f"{role}_verdict"] = cell["verdict"]
            row[f"{role}_reference"] = cell["reference"]
            row[f"{role}_radius"] = f"{cell['measure']}: {cell['radius_slope']}"
            row[f"{role}_crossing"] = cell["crossing_slope"]
        labels = [
            _label({"target": t} | dict(zip(KEYS[1:], kind[1:], strict=True))) for t in g["target"]
        ]
        row["memory"] = "; ".join(f"{t}: {memory[t]}" for t in labels if t in memory)
        rows.append(row)
    order = [*REFERENCE_TABLE, *FAMILY_NAMES.values()]  # the reference's rows first
    rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    return pd.DataFrame(rows)


CLAIMS: list[Callable[[ClaimContext], list[dict]]] = [
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
    claim_families,
    claim_grid,
]


def claims_table(
    training: pd.DataFrame,
    radius: pd.DataFrame,
    crossings: pd.DataFrame,
    memory_fit: pd.DataFrame,
    specs: dict[str, dict],
    thresholds: dict,
    beta_max: float,
    beta_min: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims table (claim, setting, measure, expected, measured, holds) and the slopes
    behind it: every claim of ``CLAIMS`` in turn.

    The claims use the first perturbation norm in ``radius``; the slopes cover every norm.
    ``beta_max``/``beta_min`` are the grid's largest and smallest positive beta (without
    ``beta_min`` the "grid" claim is n/a). ``holds`` is "true", "false", or "n/a" where the
    config has no setting to test it on.
    """
    ctx, all_slopes = context(
        training, radius, crossings, memory_fit, specs, thresholds, beta_max, beta_min
    )
    rows = [row for claim in CLAIMS for row in claim(ctx)]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS), all_slopes


def context(
    training, radius, crossings, memory_fit, specs, thresholds, beta_max, beta_min=None
) -> tuple[ClaimContext, pd.DataFrame]:
    """The claims' context (first norm) and the slopes of every norm."""
    radius, crossings = with_family(radius), with_family(crossings)
    all_slopes = slope_table(radius, crossings, beta_max)  # every norm, for the sensitivity
    norm = radius["norm"].iloc[0]
    ctx = ClaimContext(
        training=training,
        radius=radius[radius["norm"] == norm],
        crossings=crossings[crossings["norm"] == norm],
        slopes=all_slopes[all_slopes["norm"] == norm],
        memory_fit=memory_fit,
        specs=specs,
        thresholds=thresholds,
        beta_max=beta_max,
        beta_min=beta_min,
    )
    return ctx, all_slopes
