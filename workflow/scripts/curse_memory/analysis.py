"""From per-student results to the paper's claims (SPEC §3, "expected pattern").

Everything here works on the long-format tables of the workflow (pandas DataFrames):
stability radii and crossing points per model, slopes of log beta against log m with a
confidence interval, and the claims table whose rows are computed, never typed in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .perturbation import crossing_point, stability_radius

KEYS = ["target", "structure", "param", "activation"]  # one student family
MODEL = [*KEYS, "width", "seed"]  # one trained student


# ---------------------------------------------------------------------------- tables
def radius_table(perturbation: pd.DataFrame) -> pd.DataFrame:
    """Blow-up radius beta*(tau) of every student and norm (needs a ``tau`` column).

    Also what the draws at the first grid beta past the radius crossed: how many pushed an
    eigenvalue of A below 0 (``blowup_eig_negative``) or above the Euler bound 2/dt
    (``blowup_eig_euler``), so a discretisation blow-up is not mistaken for the curse.
    """
    rows = []
    for key, g in perturbation.groupby([*MODEL, "norm"], sort=True):
        g = g.sort_values("beta")
        tau = float(g["tau"].iloc[0])
        beta_star, censored = stability_radius(g["beta"], g["error"], tau)
        past = g[g["error"] > tau].head(1)
        rows.append(dict(zip([*MODEL, "norm"], key, strict=True)) | {"tau": tau})
        rows[-1] |= {"beta_star": beta_star, "censored": censored}
        for cause in ("eig_negative", "eig_euler"):
            rows[-1][f"blowup_{cause}"] = int(past[f"n_{cause}"].sum()) if len(past) else 0
    return pd.DataFrame(rows)


def crossing_table(perturbation: pd.DataFrame) -> pd.DataFrame:
    """Crossing points of successive widths m < m' within each family, seed and norm."""
    rows = []
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


def slope_table(radius: pd.DataFrame, crossings: pd.DataFrame, beta_max: float) -> pd.DataFrame:
    """Slopes of log beta vs log m per family and norm, for both stability measures.

    A censored radius (no blow-up on the grid) or a crossing that never happens is only
    known to lie beyond the grid: it enters the fit at ``beta_max``, a lower bound, and is
    counted in ``n_censored``. Crossings of non-monotone pairs mean nothing and are dropped.
    """
    blowup = radius.assign(
        measure="blowup",
        beta=radius["beta_star"].where(~radius["censored"].astype(bool), beta_max),
        cens=radius["censored"].astype(bool),
    )
    cross = crossings[crossings["status"] != "not_monotone"]
    cross = cross.assign(
        measure="crossing",
        beta=cross["beta_cross"].where(cross["status"] == "crossed", beta_max),
        cens=cross["status"] == "never",
    )
    rows = []
    for key, g in pd.concat([blowup, cross]).groupby([*KEYS, "norm", "measure"], sort=True):
        row = dict(zip([*KEYS, "norm", "measure"], key, strict=True))
        row |= log_slope(g["width"], g["beta"])
        rows.append(row | {"n_censored": int(g["cens"].sum())})
    columns = [*KEYS, "norm", "measure", "slope", "ci_low", "ci_high", "n", "n_censored"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------- claims
def target_role(spec: dict) -> str:
    """exp / pol (linear kernels), readout_pol, teacher, or other."""
    if spec["kind"] == "teacher_rnn":
        return "teacher"
    if spec.get("kernel") == "pol":
        return "pol" if spec["kind"] == "linear" else "readout_pol"
    if spec.get("kernel") == "exp" and spec["kind"] == "linear":
        return "exp"
    return "other"


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _slope_text(row: pd.Series) -> str:
    ci = f" [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]" if np.isfinite(row.ci_low) else ""
    return f"slope {_fmt(row.slope)}{ci}, n={row.n}, censored={row.n_censored}"


def _flat(row: pd.Series, threshold: float) -> bool:
    """'Does not shrink': slope >= threshold, or its CI includes 0, or nothing blew up."""
    if row.n_censored == row.n:
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


def _radius_ratio(radius: pd.DataFrame, num: dict, den: dict, beta_max: float) -> pd.Series:
    """beta*(num) / beta*(den), matched on width and seed; censored radii at beta_max."""

    def pick(sel):
        sub = radius.loc[(radius[list(sel)] == pd.Series(sel)).all(axis=1)]
        value = sub["beta_star"].where(~sub["censored"].astype(bool), beta_max)
        return value.set_axis(pd.MultiIndex.from_frame(sub[["width", "seed"]]))

    return (pick(num) / pick(den)).dropna()


def claims_table(
    training: pd.DataFrame,
    radius: pd.DataFrame,
    crossings: pd.DataFrame,
    memory_fit: pd.DataFrame,
    specs: dict[str, dict],
    thresholds: dict,
    beta_max: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims table (claim, setting, expected, measured, holds) and the slopes behind it.

    The claims use the first perturbation norm in ``radius``; the slopes cover every norm.
    ``holds`` is "true", "false", or "n/a" where the config has no setting to test it on.
    """
    all_slopes = slope_table(radius, crossings, beta_max)  # every norm, for the sensitivity
    norm = radius["norm"].iloc[0]
    radius, crossings = radius[radius["norm"] == norm], crossings[crossings["norm"] == norm]
    slopes = all_slopes[all_slopes["norm"] == norm]
    roles = {name: target_role(spec) for name, spec in specs.items()}
    flat, shrink = thresholds["flat_slope"], thresholds["shrink_slope"]
    rows: list[dict] = []

    def add(claim, setting, expected, measured, holds):
        holds = holds if isinstance(holds, str) else ("true" if holds else "false")
        rows.append(
            dict(claim=claim, setting=setting, expected=expected, measured=measured, holds=holds)
        )

    def families(target, params=None):
        sub = slopes[slopes["target"] == target]
        if params is not None:
            sub = sub[sub["param"].isin(params)]
        return sub.groupby(["structure", "param", "activation"], sort=True)

    def stable_rows(claim, target):
        for (structure, param, act), g in families(target):
            for measure in ("blowup", "crossing"):
                row = g[g["measure"] == measure].iloc[0]
                add(
                    claim,
                    f"{target}/{structure}/{param}/{act} {measure}",
                    f"{measure} radius does not shrink with m (slope >= {flat} or CI has 0)",
                    _slope_text(row),
                    _flat(row, flat),
                )

    exp_targets = [t for t, r in roles.items() if r == "exp"]
    for target in exp_targets:
        stable_rows("1", target)

    def curse_rows(claim, target):
        exp_ref = next(
            (t for t in exp_targets if specs[t].get("T") == specs[target].get("T")),
            exp_targets[0] if exp_targets else None,
        )
        for (structure, param, act), g in families(target, ["direct"]):
            fam = {"target": target, "structure": structure, "param": param, "activation": act}
            setting = f"{target}/{structure}/{param}/{act}"
            if claim == "2":
                t = training.loc[(training[list(fam)] == pd.Series(fam)).all(axis=1)]
                loss = t.groupby("width")["test_loss"].median().sort_index()
                falls = bool(len(loss) > 1 and (np.diff(loss.to_numpy()) < 0).all())
                add(
                    "2a",
                    setting,
                    "test loss falls with width",
                    " > ".join(f"m={w}: {_fmt(v)}" for w, v in loss.items()),
                    falls,
                )
            sub = "2" if claim == "2" else "5"
            if exp_ref is None:
                add(
                    f"{sub}b",
                    setting,
                    "blow-up radius well below the exp target's",
                    "no exp target in this config",
                    "n/a",
                )
            else:
                ratio = _radius_ratio(radius, fam, fam | {"target": exp_ref}, beta_max)
                mine = radius.loc[(radius[list(fam)] == pd.Series(fam)).all(axis=1)]
                add(
                    f"{sub}b",
                    setting,
                    f"beta*(pol) <= {thresholds['blowup_ratio']} x beta*({exp_ref}) at every m",
                    f"ratio max {_fmt(ratio.max())}, median {_fmt(ratio.median())}; "
                    + _causes(mine),
                    bool(len(ratio) and ratio.max() <= thresholds["blowup_ratio"]),
                )
            row = g[g["measure"] == "crossing"].iloc[0]
            add(
                f"{sub}c",
                f"{setting} crossing",
                f"crossings shrink with m (slope <= {shrink}, CI below 0)",
                _slope_text(row),
                _shrinks(row, shrink),
            )

    for target in [t for t, r in roles.items() if r == "pol"]:
        curse_rows("2", target)
        for (structure, param, act), g in families(target, ["exp", "softplus", "best"]):
            fam = {"target": target, "structure": structure, "param": param, "activation": act}
            setting = f"{target}/{structure}/{param}/{act}"
            mine = radius.loc[(radius[list(fam)] == pd.Series(fam)).all(axis=1)]
            if mine["censored"].astype(bool).all():
                causes = _causes(mine)
                add(
                    "3",
                    f"{setting} blowup",
                    "no blow-up on the grid, or far later than direct",
                    f"no blow-up on the grid (beta <= {_fmt(beta_max)})",
                    True,
                )
            else:
                ratio = _radius_ratio(radius, fam, fam | {"param": "direct"}, beta_max)
                causes = _causes(mine)
                add(
                    "3",
                    f"{setting} blowup",
                    f"beta*({param}) >= {thresholds['later_ratio']} x beta*(direct) at every m",
                    f"ratio min {_fmt(ratio.min())} ({int((~mine['censored'].astype(bool)).sum())}"
                    f" of {len(mine)} blew up; {causes})",
                    bool(len(ratio) and ratio.min() >= thresholds["later_ratio"]),
                )
            row = g[g["measure"] == "crossing"].iloc[0]
            add(
                "3",
                f"{setting} crossing",
                f"crossings do not shrink (slope >= {flat} or CI has 0)",
                _slope_text(row),
                _flat(row, flat),
            )

    students = memory_fit[memory_fit["kind"] == "student"].copy()
    parts = students["subject"].str.split("/", expand=True)
    students["family"] = parts[0] + "/" + parts[1] + "/" + parts[2] + "/" + parts[3]
    eig = training.assign(
        subject=training[MODEL]
        .astype(str)
        .agg("/".join, axis=1)
        .str.replace(r"/(\d+)/(\d+)$", r"/w\1/s\2", regex=True)
    ).set_index("subject")["min_eig"]
    for family, g in students.groupby("family", sort=True):
        n_exp = int((g["decay"] == "exponential").sum())
        verdicts = g.loc[g["decay"] != "exponential", "decay"].value_counts()
        zero = int((eig.reindex(g["subject"]) <= 0).sum())
        measured = f"{n_exp}/{len(g)} exponential"
        if len(verdicts):
            measured += "; " + ", ".join(f"{n} {v}" for v, n in verdicts.items())
        if zero:
            measured += f"; {zero} with a zero eigenvalue (a dead relu unit)"
        add(
            "4",
            f"{family} students",
            "memory fits exponential better than polynomial",
            measured,
            n_exp == len(g),
        )
    for _, fit in memory_fit[memory_fit["kind"] == "target"].iterrows():
        want = {
            "pol": "polynomial",
            "readout_pol": "polynomial",
            "exp": "exponential",
            "teacher": "exponential",
        }.get(roles.get(fit["subject"], "other"))
        if want:
            add(
                "4",
                f"target {fit['subject']}",
                f"memory fits {want}",
                f"{fit['decay']} (R2 exp {_fmt(fit['fit_exp'])}, pol {_fmt(fit['fit_pol'])})",
                fit["decay"] == want,
            )

    readout = [t for t, r in roles.items() if r == "readout_pol"]
    teachers = [t for t, r in roles.items() if r == "teacher"]
    for target in readout:
        curse_rows("5", target)
    for target in teachers:
        stable_rows("5", target)
    if not readout and not teachers:
        add(
            "5",
            "nonlinear targets",
            "nonlinear_readout(pol) like 2, teacher_rnn like 1",
            "not evaluated: no nonlinear target in this config",
            "n/a",
        )
    return pd.DataFrame(rows), all_slopes
