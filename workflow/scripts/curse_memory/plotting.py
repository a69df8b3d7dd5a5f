"""Figures of the workflow (method §5), drawn from the result tables alone.

Every public figure function takes pandas DataFrames in the long format of
``results/tables/*.tsv`` and returns a matplotlib Figure; ``save_figure`` writes it as PNG
and PDF, byte-identical across rebuilds (pinned style, fonts and dpi; no timestamps).

Conventions on log axes: non-positive and non-finite values are masked, never drawn. In
the perturbation figure a divergent error (inf, or NaN from an overflow) is drawn in a grey
band at the top of each panel whose tick reads "∞", and E_m(0) sits at the left edge,
past a dotted break, on a tick that reads "0"; in the stability figure a radius of 0 sits
likewise on a "0" tick at the bottom. Seed spread: medians with min-max bands or bars.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from itertools import product
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator  # noqa: E402

from .families import DEFAULT as DEFAULT_FAMILY  # noqa: E402
from .tables import clean, read_table  # noqa: E402, F401

DPI = 200
MODEL_KEYS = ["structure", "param", "activation", "width", "seed"]  # one student of a target
KEY_COLS = ("param", "structure", "activation")  # one series (a kind of student)
PARAM_ORDER = ("direct", "exp", "softplus", "best")
ACTIVATION_ORDER = ("linear", "tanh", "hardtanh")
STRUCTURE_ORDER = ("diagonal", "orthogonal", "dense")
TARGET_ORDER = ("exp", "pol", "shift", "twoparts", "airy", "sin")
# seaborn "colorblind", fixed here so a colour never depends on which params are present
PARAM_COLORS = {"direct": "#d55e00", "exp": "#0173b2", "softplus": "#029e73", "best": "#cc78bc"}
CYCLE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#949494", "#56b4e9")
STYLES = (("o", "-"), ("s", "--"), ("D", ":"), ("v", "-."), ("P", "-"), ("X", "--"))
# one colour and one marker per series of a figure (style_map); "^" is kept for censored
# values, greys for the legend's generic entries
SERIES_COLORS = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161",
    "#56b4e9", "#332288", "#999933", "#882255", "#44aa99", "#000000",
)  # fmt: skip
SERIES_MARKERS = ("o", "s", "D", "v", "P", "X", "p", "h", "<", ">", "*", "d")
MAX_SERIES = 5  # series per panel: more are split into small multiples
WIDTH_PALETTE = "crest"
RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "svg.hashsalt": "curse-of-memory",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 8,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
}


def apply_style() -> None:
    """The one pinned style (seaborn ticks theme + RC); every figure function calls it."""
    sns.set_theme(context="paper", style="ticks", font="DejaVu Sans", rc=RC)
    plt.rcParams.update(RC)


apply_style()


def save_figure(fig: plt.Figure, png_path: str | Path, pdf_path: str | Path) -> None:
    """Write ``fig`` as PNG and PDF with no timestamps or version stamps, then close it."""
    apply_style()
    for path in (png_path, pdf_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # no head-timestamp chatter
    fig.savefig(png_path, format="png", dpi=DPI, metadata={"Software": None})
    # the PNG's draw placed every axes: the PDF keeps that layout instead of solving it
    # again (the layout solve is about half of a many-panel figure's drawing time)
    fig.set_layout_engine("none")
    fig.savefig(pdf_path, format="pdf", metadata={"CreationDate": None, "Software": None})
    plt.close(fig)


# ----------------------------------------------------------------------------- tables


def ordered(values: Iterable, order: Sequence = ()) -> list:
    """Unique values: those in ``order`` first (in that order), then the rest as they come."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def pick_norm(df: pd.DataFrame, norm: str | None = None) -> str | None:
    """The norm to draw: ``norm`` if given, else "inf" if present, else the first one."""
    if "norm" not in df or df.empty:
        return norm
    norms = ordered(df["norm"])
    return norm if norm is not None else ("inf" if "inf" in norms else norms[0])


def _select(df: pd.DataFrame, **eq) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for col, val in eq.items():
        if val is not None and col in df:
            mask &= (df[col] == val).to_numpy()
    return df[mask]


def _positive(values) -> np.ndarray:
    """Float array with non-positive and non-finite entries masked as NaN (for log axes)."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def series_keys(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The (param, structure, activation) series present, in canonical order: structures,
    then parameterisations, then activations."""
    structs = ordered(df["structure"], STRUCTURE_ORDER)
    params = ordered(df["param"], PARAM_ORDER)
    acts = ordered(df["activation"], ACTIVATION_ORDER)
    keys = ordered(zip(df["param"], df["structure"], df["activation"], strict=True))
    return sorted(keys, key=lambda k: (structs.index(k[1]), params.index(k[0]), acts.index(k[2])))


def style_map(keys: Iterable) -> dict:
    """Series key -> (colour, marker), a pair that no other key of the figure shares: the
    keys sorted (as text), the i-th takes the i-th colour and marker (past 12 keys the
    markers shift against the colours, so the pairs stay distinct)."""
    keys = sorted(set(keys), key=str)
    nc, nm = len(SERIES_COLORS), len(SERIES_MARKERS)
    return {
        k: (SERIES_COLORS[i % nc], SERIES_MARKERS[(i + i // nc) % nm]) for i, k in enumerate(keys)
    }


def _named(value) -> bool:
    return value not in ("", "none") and not (isinstance(value, float) and math.isnan(value))


def _series_label(key: tuple[str, str, str], keys: Sequence[tuple[str, str, str]]) -> str:
    """A series for the legend: its structure and parameterisation when several are
    present, and its activation (what is not named, "none", is left out)."""
    param, struct, act = key
    parts = [
        struct if len({k[1] for k in keys}) > 1 else "",
        param if len({k[0] for k in keys}) > 1 else "",
        act,
    ]
    return " · ".join(p for p in parts if _named(p)) or struct


def _pack(parts: Iterable[tuple[tuple, list, bool]], cap: int) -> list[tuple[tuple, list]]:
    """(label, items, joinable) parts in order -> (label, items) panels: consecutive joinable
    parts joined while together they hold at most ``cap`` items (their last labels joined
    by " · ", e.g. "lru · lstm · gru")."""
    out: list[tuple[tuple, list, bool]] = []
    for label, items, joinable in parts:
        last = out[-1] if out else None
        if joinable and last and last[2] and label and len(last[1]) + len(items) <= cap:
            out[-1] = ((*last[0][:-1], f"{last[0][-1]} · {label[-1]}"), last[1] + items, True)
        else:
            out.append((label, list(items), joinable))
    return [(label, items) for label, items, _ in out]


def _split_series(keys: list, fields: Sequence, cap: int = MAX_SERIES, label: tuple = ()):
    """Series keys into small multiples of at most ``cap``: split by the first of ``fields``
    (functions of a key: family, parameterisation, ...) that takes several values, each
    part split again by the next fields while too large; consecutive small parts share a
    panel while they fit. Returns (label parts, keys) per panel."""
    if len(keys) <= cap:
        return [(label, list(keys))]
    n = next((n for n, f in enumerate(fields) if len({f(k) for k in keys}) > 1), None)
    if n is None:
        return [(label, list(keys[i : i + cap])) for i in range(0, len(keys), cap)]
    field = fields[n]
    values = ordered(field(k) for k in keys)
    parts = []
    for v in values:
        sub = [k for k in keys if field(k) == v]
        if len(sub) <= cap:  # small parts (at most half a panel) may share one
            parts.append(((*label, v), sub, 2 * len(sub) <= cap))
        else:
            parts += [(*p, False) for p in _split_series(sub, fields[n + 1 :], cap, (*label, v))]
    return _pack(parts, cap)


def _family_of(df: pd.DataFrame) -> dict | None:
    """Folded structure label -> model family, when the table mixes families."""
    if "family" not in df or df["family"].nunique() < 2:
        return None
    return dict(zip(df["structure"], df["family"], strict=True))


def series_panels(df: pd.DataFrame, split_params: bool = False, cap: int = MAX_SERIES):
    """The series of a result table (``series_keys``) as small multiples of at most ``cap``
    series: by family when the table mixes families, then by parameterisation, structure
    and activation; ``split_params``: one parameterisation per panel. Returns
    (label parts, keys) per panel."""
    keys = series_keys(df)
    fam = _family_of(df)
    fields = [lambda k: k[0], lambda k: k[1], lambda k: k[2]]
    if fam is not None:
        fields.insert(0, lambda k: fam.get(k[1], k[1]))
    if not split_params:
        return _split_series(keys, fields, cap)
    params = ordered((k[0] for k in keys), PARAM_ORDER)
    return [
        panel
        for p in params
        for panel in _split_series([k for k in keys if k[0] == p], fields[1:], cap, (p,))
    ]


def _in_keys(df: pd.DataFrame, keys: Iterable[tuple]) -> pd.DataFrame:
    """Rows of ``df`` whose (param, structure, activation) is one of ``keys``."""
    if df.empty:
        return df
    keys = set(keys)
    mask = [k in keys for k in zip(df["param"], df["structure"], df["activation"], strict=True)]
    return df[np.asarray(mask, dtype=bool)]


def _titled_figure(figsize: tuple[float, float]):
    """A figure whose body (one subfigure) holds the panels and the legend: the suptitle
    (on the figure) sits above the body, so an outside legend never reaches it."""
    fig = plt.figure(figsize=figsize, layout="constrained")
    return fig, fig.subfigures(1, 1)


def fold_family(df: pd.DataFrame) -> pd.DataFrame:
    """A result table with the model family joined to the structure label ("ssm diagonal";
    "lstm" for the families without a structure), so that every figure tells families
    apart; a table of the default family's students only (rnn) is returned as it is."""
    if "family" not in df or (df["family"] == DEFAULT_FAMILY).all():
        return df
    df = df.copy()
    pairs = zip(df["family"], df["structure"], strict=True)
    df["structure"] = [f if s == "none" else f"{f} {s}" for f, s in pairs]
    return df


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """``clean``, then ``fold_family``: how every figure reads a result table."""
    return fold_family(clean(df))


def _one_label(df: pd.DataFrame) -> pd.DataFrame:
    """Kinds with and without a parameterisation and activation (rnn next to lstm): the
    whole kind in the structure label, one panel each (no empty panels for the axes an
    lstm does not have)."""
    if "param" not in df or not ((df["param"] == "none").any() and (df["param"] != "none").any()):
        return df
    df = df.copy()
    parts = zip(df["structure"], df["param"], df["activation"], strict=True)
    df["structure"] = [" ".join(p for p in kind if p != "none") for kind in parts]
    df["param"], df["activation"] = "", ""
    return df


def _no_data(ax: plt.Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.5")


def _empty_figure(title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    _no_data(ax)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _decades(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Powers of ten in [lo, hi], thinned to at most ``max_ticks``."""
    e = np.arange(math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9) + 1)
    step = max(1, math.ceil(len(e) / max_ticks))
    return [10.0**k for k in e[::step]]


def _sci(v: float) -> str:
    k = round(math.log10(v))
    return f"$10^{{{k}}}$" if abs(v - 10.0**k) < 1e-9 * v else f"{v:.2g}"


def _width_axis(ax: plt.Axes, widths: Iterable[int]) -> None:
    """Log width axis with a tick at every width present."""
    widths = sorted({float(w) for w in widths if np.isfinite(w) and w > 0})
    ax.set_xscale("log")
    if widths:
        ax.set_xlim(widths[0] / 10**0.12, widths[-1] * 10**0.12)
    ax.xaxis.set_major_locator(FixedLocator(widths))
    labelled, gap = [], math.log10(widths[-1] / widths[0]) / 18 if widths else 0.0
    for w in widths:  # no label closer than ``gap`` decades to the previous one (14 and 16)
        if not labelled or math.log10(w / labelled[-1]) >= gap:
            labelled.append(w)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v in labelled else ""))
    ax.xaxis.set_minor_locator(NullLocator())


# --------------------------------------------------------------------- 1. target memory


def target_memory(memory_df: pd.DataFrame) -> plt.Figure:
    """Memory functions of every target (kind == "target"), log-log and semilog-y, with the
    analytic |rho(t)| dotted black where it is known; the y range ends 14 decades below
    the peak (round-off)."""
    apply_style()
    df = clean(memory_df)
    df = df[df["kind"] == "target"] if "kind" in df else df.iloc[:0]
    if df.empty:
        return _empty_figure("target memory functions")
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 3.2), layout="constrained")
    targets = ordered(df["target"], TARGET_ORDER)
    for i, name in enumerate(targets):
        sub = df[df["target"] == name].sort_values("t")
        color = CYCLE[i % len(CYCLE)]
        t, mem = sub["t"].to_numpy(float), _positive(sub["memory"])
        ana = _positive(sub["analytic"]) if "analytic" in sub else np.full(len(sub), np.nan)
        for ax, tt in ((axes[0], np.where(t > 0, t, np.nan)), (axes[1], t)):
            ax.plot(tt, mem, color=color, label=name)
            if np.isfinite(ana).any():
                ax.plot(tt, ana, color="black", ls=(0, (2, 2)), lw=0.8, alpha=0.8, zorder=3)
    axes[0].set(xscale="log", yscale="log", title="log-log")
    axes[1].set(yscale="log", title="semilog-y")
    mem = _positive(df["memory"])
    top = np.nanmax(mem) if np.isfinite(mem).any() else math.nan
    for ax in axes:
        ax.set(xlabel="time $t$", ylabel="memory $M(t)$")
        if np.isfinite(top):  # below ~1e-14 of the peak an estimate is round-off
            ax.set_ylim(max(ax.get_ylim()[0], top * 1e-14), top * 3)
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", ls=(0, (2, 2)), lw=0.8))
    labels.append(r"analytic $|\rho(t)|$")
    fig.legend(handles, labels, title="target", loc="outside right upper", frameon=False)
    return fig


# ---------------------------------------------------------------------- 2. perturbation


def _inf_band(values: np.ndarray) -> dict:
    """Log-axis layout with room for an "∞" band above the largest finite value (only when
    some value diverged: inf or NaN)."""
    values = np.asarray(values, dtype=float)
    fin = values[np.isfinite(values) & (values > 0)]
    lo, hi = (fin.min(), fin.max()) if fin.size else (1e-3, 1.0)
    lo, hi = (lo / 10, hi * 10) if hi / lo < 10 else (lo, hi)
    span = math.log10(hi / lo)
    up = 1.0 if (~np.isfinite(values)).any() else 0.35  # no band: a small margin only
    return {
        "lo": 10 ** (math.log10(lo) - 0.05 * span),
        "band": 10 ** (math.log10(hi) + 0.10 * span * up),
        "inf": 10 ** (math.log10(hi) + 0.17 * span * up),
        "top": 10 ** (math.log10(hi) + 0.24 * span * up),
        "ticks": _decades(lo, hi),
        "shown": up == 1.0,
    }


def _band_axis(ax: plt.Axes, band: dict) -> None:
    ax.set_yscale("log")
    ax.set_ylim(band["lo"], band["top"])
    if band["shown"]:
        ax.axhspan(band["band"], band["top"], color="0.9", lw=0, zorder=0)
    ticks = band["ticks"] + ([band["inf"]] if band["shown"] else [])
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "∞" if v == band["inf"] else _sci(v)))
    minor = LogLocator(subs=np.arange(2, 10)).tick_values(band["lo"], band["band"])
    minor = [v for v in minor if band["lo"] < v < band["band"]]
    few = math.log10(band["band"] / band["lo"]) <= 4  # minor ticks only when they are legible
    ax.yaxis.set_minor_locator(FixedLocator(minor) if few else NullLocator())


def _beta_axis(ax: plt.Axes, betas: np.ndarray) -> float:
    """Log beta axis from the smallest positive beta; returns where beta = 0 is drawn."""
    pos = betas[betas > 0]
    lo, hi = (pos.min(), pos.max()) if pos.size else (1e-3, 1.0)
    x0 = lo / 10**0.6
    ax.set_xscale("log")
    ax.set_xlim(x0 / 10**0.2, hi * 10**0.15)
    ax.axvline(lo / 10**0.3, color="0.6", ls=":", lw=0.8)
    ax.xaxis.set_major_locator(FixedLocator([x0, *_decades(lo, hi, 4)]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if v == x0 else _sci(v)))
    minor = LogLocator(subs=np.arange(2, 10)).tick_values(lo, hi)
    ax.xaxis.set_minor_locator(FixedLocator([v for v in minor if lo <= v <= hi]))
    return x0


def _at_inf(values, band: dict) -> np.ndarray:
    """Values for the banded log axis: inf and NaN (a divergence) at the "∞" tick,
    non-positive values masked."""
    v = np.asarray(values, dtype=float)
    v = np.where(np.isfinite(v), v, band["inf"])
    return np.where(v > 0, v, np.nan)


def _seed_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per (width, beta): median (in log space), min and max over seeds of E_m(beta); a NaN
    error (an overflow) counts as a divergence (inf)."""
    err = df["error"].astype(float).fillna(np.inf).clip(lower=0.0).to_numpy()
    with np.errstate(divide="ignore"):
        logv = np.log(err)
    g = df.assign(err=err, logv=logv).groupby(["width", "beta"], as_index=False)
    out = g.agg(med=("logv", "median"), lo=("err", "min"), hi=("err", "max"))
    return out.assign(med=np.exp(out["med"])).sort_values(["width", "beta"], ignore_index=True)


def _crossing_marks(cr: pd.DataFrame) -> pd.DataFrame:
    """Per wider width m of a pair: the median (log space) crossing beta over the seeds that
    crossed, and ``most``: whether at least half of the seeds whose pair means something
    (crossed or never; not_monotone is left out) crossed on the grid."""
    cols = ["width", "beta", "most"]
    if cr.empty or not {"width", "beta_cross", "status"} <= set(cr.columns):
        return pd.DataFrame(columns=cols)
    cr = cr[cr["status"].isin(["crossed", "never"])]
    rows = []
    for width, g in cr.groupby("width", sort=True):
        hit = _positive(g.loc[g["status"] == "crossed", "beta_cross"])
        hit = hit[np.isfinite(hit)]
        if hit.size:
            rows.append([width, float(np.exp(np.median(np.log(hit)))), 2 * hit.size >= len(g)])
    return pd.DataFrame(rows, columns=cols)


def _on_curve(beta: float, b: np.ndarray, y: np.ndarray) -> float:
    """The curve (b, y) at ``beta``, interpolated on log-log axes (b > 0 only)."""
    ok = (b > 0) & np.isfinite(y) & (y > 0)
    if not ok.any():
        return math.nan
    return float(np.exp(np.interp(math.log(beta), np.log(b[ok]), np.log(y[ok]))))


def _perturbation_panel(ax, curves, marks, colors, band, x0s, lost_tau) -> None:
    _band_axis(ax, band)
    if curves.empty:
        _no_data(ax)
        return
    if np.isfinite(lost_tau) and lost_tau > 0:
        ax.axhline(lost_tau, color="0.35", ls=(0, (4, 2)), lw=0.8, zorder=1)
    for width, sub in curves.groupby("width", sort=True):
        color, b = colors[width], sub["beta"].to_numpy(float)
        med, lo, hi = (_at_inf(sub[k], band) for k in ("med", "lo", "hi"))
        pos = b > 0
        ax.fill_between(
            b[pos], lo[pos], hi[pos], color=color, alpha=0.2, lw=0, zorder=2, label=f"seeds {width}"
        )
        ax.plot(b[pos], med[pos], color=color, lw=1.2, zorder=3, label=f"m = {width}")
        if (~pos).any():  # E_m(0): median and seed range at the left edge
            i, x = np.flatnonzero(~pos)[0], x0s[width]
            ax.plot([x, x], [lo[i], hi[i]], color=color, lw=0.8, zorder=3)
            ax.plot([x], [med[i]], "o", color=color, ms=3.2, mfc="white", mew=1, zorder=4)
        for beta_c, most in marks.loc[marks["width"] == width, ["beta", "most"]].itertuples(
            index=False
        ):
            ax.plot(
                [beta_c],
                [_on_curve(beta_c, b, med)],
                "o",
                color=color,
                mfc=color if most else "white",
                mec="black",
                mew=0.6,
                ms=5,
                zorder=5,
                label="crossing",
            )


FACET_ORDER = {"structure": STRUCTURE_ORDER, "param": PARAM_ORDER, "activation": ACTIVATION_ORDER}


def _facets(df: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Rows and columns of the perturbation grid, as {field: value} selections: columns =
    activation and rows = (structure, parameterisation) present; with a single activation,
    columns = parameterisation and rows = structure instead."""
    col = "activation" if df["activation"].nunique() > 1 or df["param"].nunique() == 1 else "param"
    row_fields = [f for f in FACET_ORDER if f != col]
    present = set(zip(*(df[f] for f in row_fields), strict=True))
    levels = [ordered(df[f], FACET_ORDER[f]) for f in row_fields]
    rows = [dict(zip(row_fields, k, strict=True)) for k in product(*levels) if k in present]
    return rows, [{col: v} for v in ordered(df[col], FACET_ORDER[col])]


def _facet_grid(df: pd.DataFrame, rows: list[dict], cols: list[dict], cap: int = 4):
    """The perturbation panels placed: rows x columns as ``_facets`` gives them when that
    is a grid of 2 to ``cap`` columns; otherwise (one column of kinds, or too many columns)
    wrapped into lines of at most ``cap`` panels, one line per family when the table mixes
    families (small families share a line). Returns ([(row, col, selection)], nrows,
    ncols)."""
    if 1 < len(cols) <= cap or len(rows) * len(cols) == 1:
        cells = [(i, j, r | c) for (i, r), (j, c) in product(enumerate(rows), enumerate(cols))]
        return cells, len(rows), len(cols)
    flat = [r | c for r in rows for c in cols]
    fam = _family_of(df)
    key = (lambda eq: fam.get(eq["structure"], "")) if fam else (lambda eq: "")
    parts = []
    for v in ordered(key(eq) for eq in flat):
        group = [eq for eq in flat if key(eq) == v]
        parts += [
            ((v,), group[k : k + cap], 2 * len(group) <= cap) for k in range(0, len(group), cap)
        ]
    lines = [items for _, items in _pack(parts, cap)]
    cells = [(i, j, eq) for i, line in enumerate(lines) for j, eq in enumerate(line)]
    return cells, len(lines), max(len(line) for line in lines)


def perturbation(
    perturbation_df: pd.DataFrame,
    crossings_df: pd.DataFrame,
    target: str,
    norm: str | None = None,
) -> plt.Figure:
    """E_m(beta) vs beta (log-log) for one target in the paper's style: one panel per
    parameterisation (rows, with the structure when several) and activation (columns; with
    a single activation: columns = parameterisation, rows = structure); one curve per width
    m (light to dark as m grows): the median over seeds with the min-max over seeds as a
    light band; E_m(0) at the left edge; divergent errors in the "∞" band; crossing points
    of successive widths (median crossing beta over the seeds that crossed; open when fewer
    than half did) as dots on the wider model's curve; the approximation-lost threshold
    (dashed) when the table has a ``lost_tau`` column."""
    apply_style()
    df = _one_label(_select(tidy(perturbation_df), target=target))
    norm = pick_norm(df, norm)
    df = _select(df, norm=norm)
    if df.empty:
        return _empty_figure(f"target {target}: no perturbation data")
    cr = _one_label(_select(tidy(crossings_df), target=target, norm=norm))
    rows, cols = _facets(df)
    cells, nrows, ncols = _facet_grid(df, rows, cols)
    several = df["structure"].nunique() > 1
    widths = sorted(df["width"].unique())
    colors = dict(zip(widths, sns.color_palette(WIDTH_PALETTE, len(widths)), strict=True))
    betas = df["beta"].to_numpy(float)
    step = min(0.045, 0.3 / max(len(widths) - 1, 1))  # dodge of the E_m(0) dots, in decades
    fig, body = _titled_figure((1.6 + 2.6 * ncols, 1.0 + 2.0 * nrows))
    axes = body.subplots(nrows, ncols, sharex=True, squeeze=False)
    used = {(i, j) for i, j, _ in cells}
    for i, j in product(range(nrows), range(ncols)):
        if (i, j) not in used:
            axes[i, j].set_visible(False)
    has_lost = False
    for i, j, eq in cells:
        ax = axes[i, j]
        sub = _select(df, **eq)
        x0 = _beta_axis(ax, betas)
        x0s = {w: x0 * 10 ** (step * (k - (len(widths) - 1) / 2)) for k, w in enumerate(widths)}
        lost = _positive(sub["lost_tau"]) if "lost_tau" in sub else np.array([])
        lost_tau = float(np.nanmedian(lost)) if np.isfinite(lost).any() else math.nan
        has_lost |= np.isfinite(lost_tau) and not sub.empty
        errors = sub["error"].to_numpy(float)
        band = _inf_band(np.append(errors, lost_tau) if np.isfinite(lost_tau) else errors)
        marks = _crossing_marks(_select(cr, **eq))
        curves = _seed_curves(sub) if len(sub) else sub
        _perturbation_panel(ax, curves, marks, colors, band, x0s, lost_tau)
        title = " / ".join(v for v in (eq["param"], eq["activation"]) if v)
        title = " · ".join(v for v in (eq["structure"] if several else "", title) if v)
        ax.set_title(title)
        if j == 0:
            ax.set_ylabel(r"$E_m(\beta)$")
        if (i + 1, j) not in used:  # the lowest panel of its column
            ax.xaxis.set_tick_params(which="both", labelbottom=True)
            ax.set_xlabel(r"perturbation $\beta$")
    handles = [Line2D([], [], color=colors[w], lw=1.5, label=f"{w}") for w in widths]
    handles += [
        Patch(facecolor="0.55", alpha=0.3, lw=0, label="min–max\nover seeds"),
        Line2D([], [], ls="", marker="o", color="0.6", mec="black", mew=0.6, label="crossing"),
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="white",
            mec="black",
            mew=0.6,
            label="crossed in\n< ½ seeds",
        ),
    ]
    if has_lost:
        handles.append(
            Line2D([], [], color="0.35", ls=(0, (4, 2)), lw=0.8, label="approximation\nlost above")
        )
    body.legend(handles=handles, title="width m", loc="outside right upper", frameon=False)
    seeds = df["seed"].nunique() if "seed" in df else 1
    note = f"median and min–max over {seeds} seeds" if seeds > 1 else "1 seed"
    fig.suptitle(f"target {target}: perturbation error ({norm}-norm)\n{note}", fontsize=10)
    return fig


# ------------------------------------------------------------------ 3. stability radius

# the measures of the stability figure, one row each, and their row labels
MEASURES = {
    "crossing": "crossing $\\beta$ of $m$\nwith the next narrower",
    "blowup": "blow-up radius $\\beta^*_m$",
    "lost": "approximation-lost\nradius $\\beta^{\\mathrm{lost}}_m$",
}


def _grid_max(perturbation_df: pd.DataFrame, target: str, norm: str | None) -> float:
    """Largest beta of the perturbation grid (of this target and norm if present)."""
    sub = _select(perturbation_df, target=target, norm=norm)
    beta = (sub if not sub.empty else perturbation_df).get("beta", pd.Series(dtype=float))
    beta = beta[np.isfinite(beta) & (beta > 0)]
    return float(beta.max()) if len(beta) else math.nan


def _as_bool(values) -> np.ndarray:
    return np.array([str(v).strip().lower() in ("true", "1", "1.0") for v in values], dtype=bool)


def _measure_tables(rad: pd.DataFrame, cr: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every stability measure as rows with ``value``, ``censored`` and ``tau``: crossings
    ("never" is censored, "not_monotone" is left out), the blow-up radius, and the
    approximation-lost radius only when the table has its columns (older tables do not)."""
    out = {}
    if {"status", "beta_cross", "width"} <= set(cr.columns):
        c = cr[cr["status"] != "not_monotone"]
        out["crossing"] = c.assign(
            value=c["beta_cross"].astype(float), censored=(c["status"] == "never"), tau=math.nan
        )
    else:
        out["crossing"] = pd.DataFrame()
    if {"beta_star", "censored", "width"} <= set(rad.columns):
        out["blowup"] = rad.assign(
            value=rad["beta_star"].astype(float),
            censored=_as_bool(rad["censored"]),
            tau=rad.get("tau", math.nan),
        )
    else:
        out["blowup"] = pd.DataFrame()
    if {"beta_lost", "lost_censored", "width"} <= set(rad.columns):
        lost = rad.assign(
            value=rad["beta_lost"].astype(float),
            censored=_as_bool(rad["lost_censored"]),
            tau=rad.get("lost_tau", math.nan),
        )
        if (lost["value"].notna() | lost["censored"]).any():
            out["lost"] = lost
    return out


def _seed_summary(df: pd.DataFrame, grid_max: float) -> pd.DataFrame:
    """Per (structure, param, activation, width): log-space median, min and max over seeds
    of ``value``; censored values count as the grid maximum, a radius of 0 (lost at
    beta = 0) as 0; ``censored`` when the median is censored (more than half the seeds)."""
    df = df.assign(value=np.where(df["censored"], grid_max, df["value"].astype(float)))
    df = df[np.isfinite(df["value"]) & (df["value"] >= 0)]
    keys = [k for k in ("structure", "param", "activation", "width") if k in df]
    with np.errstate(divide="ignore"):
        logv = np.log(df["value"].to_numpy(float))
    g = df.assign(logv=logv, cen=df["censored"].astype(float)).groupby(keys, as_index=False)
    out = g.agg(
        med=("logv", "median"), lo=("value", "min"), hi=("value", "max"), cen=("cen", "mean")
    )
    out["censored"] = out.pop("cen") > 0.5
    return out.assign(med=np.exp(out["med"]))


def _radius_yaxis(ax: plt.Axes, summaries: list[pd.DataFrame], grid_max: float) -> float:
    """Log y axis for one measure (a row of shared axes) from the grid max down to the
    smallest value; a "0" tick past a dotted break when some radius is 0. Returns where
    0 is drawn (NaN when nothing is 0)."""
    vals = np.concatenate(
        [[], *(s[["med", "lo", "hi"]].to_numpy(float).ravel() for s in summaries)]
    )
    vals = vals[np.isfinite(vals)]
    pos = vals[vals > 0]
    if np.isfinite(grid_max) and grid_max > 0:
        pos = np.append(pos, [grid_max, grid_max / 10**1.5])
    lo, hi = (pos.min(), pos.max()) if pos.size else (1e-3, 1.0)
    ax.set_yscale("log")
    if not (vals == 0).any():
        ax.set_ylim(lo / 10**0.15, hi * 10**0.25)
        return math.nan
    y0 = lo / 10**0.6
    ax.set_ylim(y0 / 10**0.25, hi * 10**0.25)
    ax.yaxis.set_major_locator(FixedLocator([y0, *_decades(lo, hi, 5)]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if v == y0 else _sci(v)))
    minor = LogLocator(subs=np.arange(2, 10)).tick_values(lo, hi)
    ax.yaxis.set_minor_locator(FixedLocator([v for v in minor if lo <= v <= hi]))
    return y0


def _radius_panel(ax, summary, style_of, grid_max, widths, zero_at) -> None:
    _width_axis(ax, widths)
    if np.isfinite(grid_max):
        ax.axhline(grid_max, color="0.6", ls=":", lw=0.8, zorder=0)
    if np.isfinite(zero_at):  # the break between the "0" tick and the log axis
        ax.axhline(zero_at * 10**0.3, color="0.6", ls=":", lw=0.8, zorder=0)
    if summary.empty:
        _no_data(ax)
        return
    groups = list(summary.groupby(["param", "structure", "activation"], sort=False))
    groups.sort(key=lambda g: list(style_of).index(g[0]))
    step = min(0.012, 0.06 / max(len(groups) - 1, 1))  # dodge, in decades of m
    for n, (key, sub) in enumerate(groups):
        sub = sub.sort_values("width")
        x = sub["width"].to_numpy(float) * 10 ** (step * (n - (len(groups) - 1) / 2))
        med, lo, hi = (np.where(sub[k] > 0, sub[k], zero_at) for k in ("med", "lo", "hi"))
        color, marker = style_of[key]
        yerr = np.clip(np.nan_to_num([med - lo, hi - med]), 0, None)
        ax.errorbar(x, med, yerr=yerr, color=color, lw=0.9, elinewidth=0.6)
        cen = sub["censored"].to_numpy(bool)
        ax.plot(x[~cen], med[~cen], ls="", marker=marker, color=color, ms=3.5)
        ax.plot(x[cen], med[cen], ls="", marker="^", color=color, mfc="white", ms=4.5)


def _tau_text(tau: pd.Series) -> str:
    """A threshold for a panel title: its value, or its range over the models."""
    tau = _positive(tau)
    tau = tau[np.isfinite(tau)]
    if not tau.size:
        return ""

    def fmt(v):
        return f"{v:.3g}".replace("e+0", "e").replace("e-0", "e-")

    lo, hi = tau.min(), tau.max()
    return fmt(lo) if hi <= lo * (1 + 1e-6) else f"{fmt(lo)}–{fmt(hi)}"


def _wrap_cells(cells: list, per_group: int, cap: int = 5) -> list[list]:
    """Panels (target-major, ``per_group`` per target) into lines of at most ``cap``,
    keeping a target's panels on one line when they fit."""
    if len(cells) <= cap:
        return [cells]
    per_line = per_group * max(1, cap // per_group) if per_group <= cap else cap
    return [cells[i : i + per_line] for i in range(0, len(cells), per_line)]


def stability_radius(
    radius_df: pd.DataFrame,
    crossings_df: pd.DataFrame,
    perturbation_df: pd.DataFrame,
    norm: str | None = None,
    split_params: bool | None = None,
) -> plt.Figure:
    """Every stability measure against width (log-log): rows = measure (crossing beta of
    successive widths, blow-up radius beta*, and the approximation-lost radius when the
    table has it), columns = target x small multiple of at most 5 series (by family when
    the table mixes families, else by parameterisation when ``split_params``, default:
    when that makes at most 4 columns), wrapped into blocks of rows when more than 5
    columns; one colour and marker per series (``style_map``); median over seeds with
    min-max bars; censored values (no crossing, no blow-up, approximation never lost on the
    grid) at the grid maximum (dotted) as open ^; a radius of 0 on a "0" tick at the
    bottom."""
    apply_style()
    rad, cr, pert = tidy(radius_df), tidy(crossings_df), tidy(perturbation_df)
    norm = pick_norm(rad if not rad.empty else cr, norm)
    rad, cr = _select(rad, norm=norm), _select(cr, norm=norm)
    targets = ordered([*rad.get("target", []), *cr.get("target", [])], TARGET_ORDER)
    if not targets:
        return _empty_figure("stability radius: no data")
    tables = _measure_tables(rad, cr)
    both = pd.concat([t for t in tables.values() if len(t)], ignore_index=True)
    keys = series_keys(both)
    styles = style_map(keys)
    style_of = {k: styles[k] for k in keys}  # legend and panels in canonical order
    params = ordered(both["param"], PARAM_ORDER)
    if split_params is None:
        split_params = _family_of(both) is None and 1 < len(params) <= 4 // len(targets)
    groups = series_panels(both, split_params=split_params)
    present = set(zip(*(both[c] for c in ("target", *KEY_COLS)), strict=True))
    cells = [
        (t, label, gkeys)
        for t in targets
        for label, gkeys in groups
        if any((t, *k) in present for k in gkeys)
    ]
    lines = _wrap_cells(cells, len(groups))
    ncols, nm = max(len(line) for line in lines), len(tables)
    labels = [_series_label(k, keys) for k in keys]
    legend_w = max(2.0, 1.0 + 0.06 * max(len(x) for x in [*labels, "censored:"]))
    fig, body = _titled_figure(
        ((3.0 if ncols <= 3 else 2.6) * ncols + legend_w, 0.9 + 2.05 * nm * len(lines))
    )
    axes = body.subplots(nm * len(lines), ncols, squeeze=False)
    placed = []  # (measure index, ax, cell)
    for li, line in enumerate(lines):
        for j in range(ncols):
            for i in range(nm):
                ax = axes[li * nm + i, j]
                if j < len(line):
                    placed.append((i, ax, line[j]))
                else:
                    ax.set_visible(False)
    gmax = {t: _grid_max(pert, t, norm) for t in targets}
    for t in targets:
        if not np.isfinite(gmax[t]):  # no perturbation table: the largest value seen
            seen = pd.concat([_select(d, target=t) for d in tables.values() if len(d)])["value"]
            gmax[t] = float(seen.max()) if seen.notna().any() else 1.0
    for i, (measure, table) in enumerate(tables.items()):
        mine = [(ax, cell) for n, ax, cell in placed if n == i]
        subs = [_in_keys(_select(table, target=c[0]), c[2]) for _, c in mine]
        summ = [
            _seed_summary(d, gmax[c[0]]) if len(d) else pd.DataFrame()
            for d, (_, c) in zip(subs, mine, strict=True)
        ]
        first = mine[0][0]
        for ax, _ in mine[1:]:
            ax.sharey(first)
        zero_at = _radius_yaxis(first, [s for s in summ if len(s)], max(gmax.values()))
        for (ax, (t, label, _)), sub, sm in zip(mine, subs, summ, strict=True):
            widths = {w for d in tables.values() if len(d) for w in _select(d, target=t)["width"]}
            _radius_panel(ax, sm, style_of, gmax[t], sorted(widths), zero_at)
            title = " / ".join(v for v in (t, *label) if _named(v))
            tau = _tau_text(sub["tau"]) if "tau" in sub else ""
            sym = {"blowup": "τ", "lost": r"$\tau_{\mathrm{lost}}$"}.get(measure)
            if sym and tau:
                sep = "\n" if len(title) + len(tau) > 26 and ncols > 1 else "  "
                title = f"{title}{sep}({sym} = {tau})"
            ax.set_title(title)
            if i == nm - 1:
                ax.set_xlabel("width $m$")
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel(MEASURES[measure])
            else:
                ax.yaxis.set_tick_params(which="both", labelleft=False)
    handles = [
        Line2D([], [], color=c, marker=m, ls="-", label=label)
        for (c, m), label in zip(style_of.values(), labels, strict=True)
    ]
    handles += [
        Line2D([], [], color="0.3", marker="^", mfc="white", ls="", label="censored:\nbeyond grid"),
        Line2D([], [], color="0.6", ls=":", label="grid max β"),
    ]
    body.legend(handles=handles, loc="outside right upper", frameon=False)
    fig.suptitle(f"stability vs width ({norm}-norm)\nmedian, min–max over seeds", fontsize=10)
    return fig


# -------------------------------------------------------------------- 4. student memory


def _panel_grid(n: int, ncols: int = 3, size=(2.7, 2.3), **kw) -> tuple[plt.Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(1.4 + size[0] * ncols, 0.5 + size[1] * nrows),
        squeeze=False,
        layout="constrained",
        **kw,
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def student_memory(memory_df: pd.DataFrame) -> plt.Figure:
    """Students' memory functions (thin; one colour and marker per kind of student,
    ``style_map``; every width and seed drawn) against their target's (thick black), one
    log-log panel per target and small multiple of at most 5 kinds (by family when the
    table mixes families: rows = targets, columns = families)."""
    apply_style()
    df = tidy(memory_df)
    stu = df[df["kind"] == "student"] if "kind" in df else df.iloc[:0]
    if stu.empty:
        return _empty_figure("student memory functions: no data")
    keys = series_keys(stu)
    styles = style_map(keys)
    groups = series_panels(stu)
    targets = ordered(stu["target"], TARGET_ORDER)
    cells = [
        (target, label, gkeys)
        for target in targets
        for label, gkeys in groups
        if len(_in_keys(stu[stu["target"] == target], gkeys))
    ]
    ncols = len(groups) if 1 < len(groups) <= 4 else 3
    fig, axes = _panel_grid(len(cells), ncols=ncols, sharey=False)
    for ax, (target, label, gkeys) in zip(axes, cells, strict=True):
        title = " / ".join(v for v in (target, *label) if _named(v))
        ax.set(xscale="log", yscale="log", title=title, xlabel="time $t$")
        sub_t = _in_keys(stu[stu["target"] == target], gkeys)
        for _key, sub in sub_t.groupby(MODEL_KEYS, sort=True):
            sub = sub.sort_values("t")
            color, marker = styles[tuple(sub[c].iloc[0] for c in KEY_COLS)]
            ax.plot(
                _positive(sub["t"]),
                _positive(sub["memory"]),
                lw=0.9,
                alpha=0.75,
                color=color,
                marker=marker,
                ms=3,
                markevery=0.15,
            )
        tgt = df[(df["kind"] == "target") & (df["target"] == target)].sort_values("t")
        if tgt.empty:
            ax.text(0.03, 0.03, "target memory missing", transform=ax.transAxes, fontsize=7)
        ax.plot(_positive(tgt["t"]), _positive(tgt["memory"]), color="black", lw=2.4, zorder=4)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("memory $M(t)$")
    handles = [Line2D([], [], color="black", lw=2.4, label="target")]
    handles += [
        Line2D([], [], color=styles[k][0], marker=styles[k][1], ms=3, label=_series_label(k, keys))
        for k in keys
    ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    return fig


# -------------------------------------------------------------------------- 5. training


def _loss_curves(sfig, hist: pd.DataFrame, targets, params, act_ls) -> None:
    widths = sorted(hist["width"].unique())
    colors = dict(zip(widths, sns.color_palette(WIDTH_PALETTE, len(widths)), strict=True))
    axes = sfig.subplots(len(targets), len(params), sharex=True, squeeze=False)
    for (i, target), (j, param) in product(enumerate(targets), enumerate(params)):
        ax, sub = axes[i, j], _select(hist, target=target, param=param)
        ax.set_yscale("log")
        if sub.empty:
            _no_data(ax)
        for (width, act, _), run in sub.groupby(["width", "activation", "structure"]):
            run = run.sort_values("step")
            ax.plot(
                run["step"],
                _positive(run["val_loss"]),
                color=colors[width],
                lw=0.9,
                ls=act_ls.get(act, "-"),
            )
        axes[0, j].set_title(param)
        axes[-1, j].set_xlabel("step")
        axes[i, 0].set_ylabel(f"{target}\nval loss")
    handles = [Line2D([], [], color=colors[w], label=f"{w}") for w in widths]
    sfig.legend(handles=handles, title="m", loc="outside right upper", frameon=False)


def _final_losses(sfig, train: pd.DataFrame, targets, act_ls) -> None:
    axes = sfig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets, strict=True):
        sub = _select(train, target=target)
        sub = sub.assign(loss=_positive(sub["test_loss"]))
        _width_axis(ax, sub["width"].unique())
        ax.set(yscale="log", title=target, xlabel="width $m$")
        if sub["loss"].isna().all():
            _no_data(ax)
            continue
        g = sub.groupby(["param", "activation", "structure", "width"], as_index=False)["loss"]
        agg = g.agg(med="median", lo="min", hi="max")
        for (param, act, _), a in agg.groupby(["param", "activation", "structure"]):
            yerr = np.clip([a["med"] - a["lo"], a["hi"] - a["med"]], 0, None)
            ax.errorbar(
                a["width"],
                a["med"],
                yerr=yerr,
                color=PARAM_COLORS.get(param, "0.4"),
                ls=act_ls.get(act, "-"),
                marker="o",
                ms=3,
                lw=1.0,
                elinewidth=0.7,
            )
    axes[0].set_ylabel("final test loss")
    params = ordered(train["param"], PARAM_ORDER)
    handles = [Line2D([], [], color=PARAM_COLORS.get(p, "0.4"), label=p) for p in params]
    handles += [Line2D([], [], color="0.3", ls=ls, label=a) for a, ls in act_ls.items()]
    sfig.legend(handles=handles, loc="outside right upper", frameon=False)


def training(history_df: pd.DataFrame, training_df: pd.DataFrame) -> plt.Figure:
    """Top: validation loss vs step (log-y), targets x parameterisations, hue = width,
    line = activation, first seed only. Bottom: final test loss vs width (log-log) per
    target, median over seeds with min-max bars."""
    apply_style()
    hist, train = tidy(history_df), tidy(training_df)
    if hist.empty and train.empty:
        return _empty_figure("training: no data")
    both = pd.concat([hist, train], ignore_index=True)
    targets = ordered(both["target"], TARGET_ORDER)
    params = ordered(both["param"], PARAM_ORDER)
    acts = ordered(both["activation"], ACTIVATION_ORDER)
    act_ls = {a: STYLES[i % len(STYLES)][1] for i, a in enumerate(acts)}
    if "seed" in hist and not hist.empty:
        hist = hist[hist["seed"] == hist["seed"].min()]
    fig = plt.figure(
        figsize=(1.6 + 2.3 * max(len(params), len(targets)), 2.6 + 1.8 * len(targets)),
        layout="constrained",
    )
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.8 * len(targets), 2.2])
    if hist.empty:
        _no_data(top.subplots())
    else:
        _loss_curves(top, hist, targets, params, act_ls)
    _final_losses(bottom, train, targets, act_ls)
    return fig


# -------------------------------------------------------------------- 6. sensitivity


def sensitivity(slopes_df: pd.DataFrame) -> plt.Figure:
    """Slopes of log beta vs log m (95% CI) for every stability measure, one row of points
    per target / structure / norm / activation, hue = parameterisation: how the curse's
    signature (a negative crossing slope on pol with direct) depends on each confounder."""
    apply_style()
    df = tidy(slopes_df)
    df = df[df["measure"].isin(["crossing", "blowup", "lost", "error"])]
    if df.empty:
        return _empty_figure("sensitivity: no data")
    df["setting"] = df["target"] + " · " + df["structure"] + " · " + df["norm"] + " · "
    df["setting"] += df["activation"]
    settings = sorted(
        df["setting"].unique(), key=lambda s: [ordered([s.split(" · ")[0]], TARGET_ORDER), s]
    )
    params = ordered(df["param"], PARAM_ORDER)
    measures = [m for m in ("crossing", "blowup", "lost", "error") if m in set(df["measure"])]
    df = df[df["measure"].isin(measures) & np.isfinite(df["slope"])]
    # a CI left open by censored values (a bound) is drawn to the panel's edge
    ends = df[["slope", "ci_low", "ci_high"]].to_numpy(float)
    finite = ends[np.isfinite(ends)]
    edge = (finite.min() - 0.5, finite.max() + 0.5) if finite.size else (-1.0, 1.0)
    df = df.assign(
        ci_low=df["ci_low"].clip(lower=edge[0]), ci_high=df["ci_high"].clip(upper=edge[1])
    )
    fig, axes = plt.subplots(
        1,
        len(measures),
        figsize=(4.3 * len(measures), 1.2 + 0.32 * len(settings)),
        sharey=True,
        layout="constrained",
        squeeze=False,
    )
    axes = axes[0]
    offsets = np.linspace(-0.2, 0.2, len(params)) if len(params) > 1 else [0.0]
    for ax, measure in zip(axes, measures, strict=True):
        for off, param in zip(offsets, params, strict=True):
            sub = df[(df["measure"] == measure) & (df["param"] == param)]
            y = np.array([settings.index(s) for s in sub["setting"]]) + off
            lo = (sub["slope"] - sub["ci_low"]).to_numpy()
            hi = (sub["ci_high"] - sub["slope"]).to_numpy()
            ax.errorbar(
                sub["slope"],
                y,
                xerr=[np.nan_to_num(lo), np.nan_to_num(hi)],
                ls="",
                marker="o",
                ms=4,
                color=PARAM_COLORS.get(param, "0.3"),
                label=param,
                capsize=2,
            )
        ax.axvline(0, color="0.5", lw=0.8, ls=":")
        titles = {"crossing": "crossing points", "blowup": "blow-up radius"}
        titles |= {"lost": "approximation-lost radius", "error": r"$E_m(\beta_0)$"}
        ax.set_title(titles.get(measure, measure))
        ax.set_xlabel(r"slope of $\log\beta$ vs $\log m$")
        ax.set_xlim(*edge)
    axes[0].set_yticks(range(len(settings)), settings)
    axes[0].invert_yaxis()
    handles = [
        Line2D([], [], color=PARAM_COLORS.get(p, "0.3"), marker="o", ls="", label=p) for p in params
    ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    fig.suptitle(
        "slope with width: mean of the seeds' slopes, 95% CI across seeds "
        "(an open end, set by censored values, reaches the panel's edge)",
        fontsize=10,
    )
    return fig
