"""Figures (curse_memory.plotting) on small synthetic result tables."""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex

from curse_memory import plotting

BETAS = [0.0] + [1e-3 * 2 ** (i * 0.5) for i in range(21)]
WIDTHS = (2, 4, 8, 16)
KEYS = ("target", "structure", "param", "activation")


FACTOR = {"direct": 1.0, "exp": 1.4, "softplus": 1.8, "best": 2.4, "tanh": 1.2, "hardtanh": 1.5}


def _error_curve(
    target: str,
    param: str,
    act: str,
    width: int,
    seed: int,
    jitter: float = 0.0,
    bounded: bool = False,
) -> np.ndarray:
    """E_m(beta): falls with m at beta = 0; direct on pol blows up at beta ~ 0.3 / m (only the
    linear activation when ``bounded``: tanh and hardtanh saturate instead); ``jitter``
    multiplies by seeded noise (seed spread)."""
    f = FACTOR.get(param, 1.0) * FACTOR.get(act, 1.0) * (1 + 0.1 * seed)
    e0 = (1e-2 if target == "pol" else 1e-3) / width * f
    err = np.array([e0 + (b * width**0.5 * f) ** 2 for b in BETAS])
    if jitter:
        rng = np.random.default_rng([seed, width, len(act), len(param), len(target)])
        err *= np.exp(jitter * rng.standard_normal(len(err)))
    if target == "pol" and param == "direct" and not (bounded and act != "linear"):
        err[np.array(BETAS) > 0.3 / width] = np.inf
    return np.maximum.accumulate(err)


LOST_TAU = {"exp": 0.03, "pol": 0.3}  # the zero predictor's error, per target


def make_tables(
    targets=("exp", "pol"),
    params=("direct", "exp"),
    acts=("linear", "tanh"),
    seeds=(1, 2),
    structures=("diagonal",),
    tau=1e3,
    widths=WIDTHS,
    lost=False,
    jitter=0.0,
    bounded=False,
) -> dict[str, pd.DataFrame]:
    """Result tables as the workflow writes them; ``lost`` adds the approximation-lost radius
    (lost_tau, beta_lost, lost_censored) to the radius table."""
    pert, rad, cross = [], [], []
    for key in ((t, s, p, a) for t in targets for s in structures for p in params for a in acts):
        for seed in seeds:
            curves = {
                m: _error_curve(*key[:1], *key[2:], m, seed, jitter=jitter, bounded=bounded)
                for m in widths
            }
            for m, err in curves.items():
                base = dict(zip(KEYS, key, strict=True), width=m, seed=seed, norm="inf")
                for b, e in zip(BETAS, err, strict=True):
                    pert.append({**base, "beta": b, "error": e, "error_max": e})
                ok = [b for b, e in zip(BETAS, err, strict=True) if e <= tau]
                cen = bool(np.all(err <= tau))
                row = {**base, "tau": tau, "beta_star": math.nan if cen else max(ok)}
                row |= {"censored": cen, "blowup_eig_negative": 0, "blowup_eig_euler": 0}
                if lost:
                    above = [
                        b for b, e in zip(BETAS, err, strict=True) if not e <= LOST_TAU[key[0]]
                    ]
                    row |= {
                        "lost_tau": LOST_TAU[key[0]],
                        "beta_lost": above[0] if above else math.nan,
                        "lost_censored": not above,
                    }
                rad.append(row)
            for narrow, wide in zip(widths[:-1], widths[1:], strict=True):
                if not curves[wide][0] < curves[narrow][0]:
                    status, beta = "not_monotone", math.nan
                else:
                    hit = [
                        b
                        for b, en, ew in zip(BETAS, curves[narrow], curves[wide], strict=True)
                        if b > 0 and ew >= en
                    ]
                    status, beta = ("crossed", hit[0]) if hit else ("never", math.nan)
                cross.append(
                    {
                        **dict(zip(KEYS, key, strict=True)),
                        "seed": seed,
                        "norm": "inf",
                        "width_narrow": narrow,
                        "width": wide,
                        "beta_cross": beta,
                        "status": status,
                    }
                )
    pert = pd.DataFrame(pert).assign(n_diverged=0, n_eig_negative=0, n_eig_euler=0)
    return {
        "perturbation": pert,
        "radius": pd.DataFrame(rad),
        "crossings": pd.DataFrame(cross),
        "memory": _memory(targets, params, acts),
        **_training(targets, structures, params, acts, seeds),
    }


def _memory(targets, params, acts) -> pd.DataFrame:
    t = np.arange(100.0)
    rho = {"exp": np.exp(-t), "pol": (1 + 0.1 * t) ** -1.1, "teacher": 0.5 * np.exp(-0.3 * t)}
    rows = []
    for target in (*targets, "teacher"):
        analytic = rho[target] if target != "teacher" else np.full_like(t, np.nan)
        rows.append(
            pd.DataFrame(
                {
                    "subject": target,
                    "kind": "target",
                    "target": target,
                    "t": t,
                    "memory": rho[target] * 1.01,
                    "analytic": analytic,
                }
            )
        )
        if target == "teacher":
            continue
        for p in params:
            for a in acts:
                for m in (4, 8):
                    mem = np.exp(-t / (3 * m * FACTOR.get(p, 1.0) * FACTOR.get(a, 1.0))) / m
                    mem[5] = 0.0  # a non-positive value the log axes must mask
                    rows.append(
                        pd.DataFrame(
                            {
                                "subject": f"{target}/diagonal/{p}/{a}/{m}/1",
                                "kind": "student",
                                "target": target,
                                "structure": "diagonal",
                                "param": p,
                                "activation": a,
                                "width": m,
                                "seed": 1,
                                "t": t,
                                "memory": mem,
                                "analytic": np.nan,
                            }
                        )
                    )
    return pd.concat(rows, ignore_index=True)


def _training(targets, structures, params, acts, seeds) -> dict[str, pd.DataFrame]:
    hist, train = [], []
    steps = np.arange(0, 501, 20)
    for key in ((t, s, p, a) for t in targets for s in structures for p in params for a in acts):
        for m in WIDTHS:
            for seed in seeds:
                final = 1e-2 / m * (1 + 0.2 * seed) * FACTOR.get(key[2], 1) * FACTOR.get(key[3], 1)
                base = dict(zip(KEYS, key, strict=True), width=m, seed=seed)
                val = final + np.exp(-steps / 80.0)
                hist.append(
                    pd.DataFrame(
                        {
                            **base,
                            "step": steps,
                            "train_loss": val,
                            "val_loss": val,
                            "lr": 1e-2,
                            "min_eig": 0.1,
                        }
                    )
                )
                train.append(
                    {
                        **base,
                        "steps": 500,
                        "train_loss": final,
                        "val_loss": final,
                        "test_loss": final,
                        "min_eig": 0.1,
                        "max_eig": 1.0,
                        "monotone_ok": True,
                        "stop_reason": "max_steps",
                        "wall_s": 1.0,
                    }
                )
    return {"history": pd.concat(hist, ignore_index=True), "training": pd.DataFrame(train)}


def _roundtrip(df: pd.DataFrame, tmp_path, name: str) -> pd.DataFrame:
    """Write and read back as the workflow does (tab-separated, inf as "inf")."""
    path = tmp_path / f"{name}.tsv"
    df.to_csv(path, sep="\t", index=False, na_rep="NaN")
    return plotting.read_table(path)


@pytest.fixture(scope="module")
def tables():
    return make_tables()


def _labels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _legends(fig) -> list:
    """The figure's legends, those of its subfigures (the panels' body) included."""
    return [*fig.legends, *(leg for sub in fig.subfigs for leg in _legends(sub))]


def test_target_memory(tables):
    fig = plotting.target_memory(tables["memory"])
    axes = _labels(fig)
    assert len(axes) == 2
    assert axes[0].get_xscale() == "log" and axes[0].get_yscale() == "log"
    assert axes[1].get_xscale() == "linear" and axes[1].get_yscale() == "log"
    assert "M(t)" in axes[0].get_ylabel()
    # 3 targets, analytic dashed for exp and pol only
    assert len(axes[0].get_lines()) == 5
    plt.close(fig)


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


def _width_lines(ax) -> list:
    return [ln for ln in ax.get_lines() if ln.get_label().startswith("m = ")]


def _crossing_dots(ax) -> list:
    return [ln for ln in ax.get_lines() if ln.get_label() == "crossing"]


def _seed_bands(ax) -> list:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _yticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


@pytest.fixture(scope="module")
def small():
    """2 widths x 2 seeds x 2 activations on pol/direct: linear diverges (inf), tanh is
    bounded; the radius table has the approximation-lost columns."""
    return make_tables(
        targets=("pol",),
        params=("direct",),
        acts=("linear", "tanh"),
        seeds=(1, 2),
        widths=(2, 4),
        lost=True,
        jitter=0.2,
        bounded=True,
    )


def test_perturbation_facets_and_inf_band(tables):
    fig = plotting.perturbation(tables["perturbation"], tables["crossings"], "pol")
    axes = _labels(fig)
    assert len(axes) == 2 * 2  # rows = params, columns = activations
    titles = [ax.get_title() for ax in axes]
    assert titles == ["direct / linear", "direct / tanh", "exp / linear", "exp / tanh"]
    assert "E_m" in axes[0].get_ylabel() and "E_m" in axes[2].get_ylabel()
    assert "∞" in _yticks(axes[0])
    assert "0" in [t.get_text() for t in axes[2].get_xticklabels()]  # bottom row
    for ax in axes:  # nothing infinite or non-positive reaches a log axis
        assert len(_width_lines(ax)) == len(WIDTHS)
        assert len(_seed_bands(ax)) == len(WIDTHS)
        for line in ax.get_lines():
            if line.get_transform() is not ax.transData:
                continue  # the axvline marking the beta = 0 break
            y = np.asarray(line.get_ydata(), dtype=float)
            assert np.all(np.isfinite(y[~np.isnan(y)])) and np.all(y[~np.isnan(y)] > 0)
    legend = [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]
    assert [str(w) for w in WIDTHS] == legend[: len(WIDTHS)]
    assert len(_legends(fig)) == 1  # one shared legend
    plt.close(fig)


def test_perturbation_paper_style_panels(small):
    """One panel per (param, activation), one median curve and one seed band per width,
    the seed band spans min-max over seeds, crossing dots on the wider model's curve."""
    pert, cross = small["perturbation"], small["crossings"]
    fig = plotting.perturbation(pert, cross, "pol")
    axes = _labels(fig)
    assert [ax.get_title() for ax in axes] == ["direct / linear", "direct / tanh"]
    assert "median and min–max over 2 seeds" in fig.get_suptitle()
    for ax, act in zip(axes, ("linear", "tanh"), strict=True):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        lines, bands = _width_lines(ax), _seed_bands(ax)
        assert [ln.get_label() for ln in lines] == ["m = 2", "m = 4"]
        assert len(bands) == 2
        # the seed band of m = 2 encloses both seeds' finite errors at every beta > 0
        sub = pert[(pert["activation"] == act) & (pert["width"] == 2) & (pert["beta"] > 0)]
        env = sub.groupby("beta")["error"].agg(["min", "max"])
        verts = bands[0].get_paths()[0].vertices
        fin = np.isfinite(env["max"]).to_numpy()
        assert verts[:, 1].min() <= env["min"].min() * (1 + 1e-9)
        assert verts[:, 1].max() >= env["max"][fin].max() * (1 - 1e-9)
        # crossing: at the median (log space) crossing beta over the seeds that crossed,
        # on the wider model's median curve
        dots = _crossing_dots(ax)
        hit = cross[(cross["activation"] == act) & (cross["status"] == "crossed")]
        assert len(dots) == (1 if len(hit) else 0)
        if len(hit):
            expected = math.exp(np.median(np.log(hit["beta_cross"])))
            assert np.isclose(dots[0].get_xdata()[0], expected)
            med = lines[1]  # m = 4
            x, y = np.asarray(med.get_xdata()), np.asarray(med.get_ydata())
            y_on = np.exp(np.interp(np.log(expected), np.log(x), np.log(y)))
            assert np.isclose(dots[0].get_ydata()[0], y_on)
            assert dots[0].get_markeredgecolor() == "black"
    assert "∞" in _yticks(axes[0]) and "∞" not in _yticks(axes[1])  # only linear diverged
    # where a seed diverged the band reaches the ∞ tick
    inf_tick = [t.get_position()[1] for t in axes[0].get_yticklabels() if t.get_text() == "∞"]
    top = max(c.get_paths()[0].vertices[:, 1].max() for c in _seed_bands(axes[0]))
    assert np.isclose(top, inf_tick[0])
    plt.close(fig)


def test_perturbation_crossing_in_few_seeds_is_open(small):
    """A crossing found in fewer than half of the seeds is drawn open (white face)."""
    t = make_tables(
        targets=("pol",), params=("direct",), acts=("tanh",), seeds=(1, 2, 3), widths=(2, 4)
    )
    cross = t["crossings"].copy()
    never = cross["seed"] >= 2
    cross.loc[never, "status"], cross.loc[never, "beta_cross"] = "never", np.nan
    fig = plotting.perturbation(t["perturbation"], cross, "pol")
    dots = _crossing_dots(fig.axes[0])
    assert len(dots) == 1 and dots[0].get_markerfacecolor() == "white"
    plt.close(fig)
    fig = plotting.perturbation(t["perturbation"], t["crossings"], "pol")
    dots = _crossing_dots(fig.axes[0])
    assert len(dots) == 1 and dots[0].get_markerfacecolor() != "white"
    plt.close(fig)


def test_perturbation_draws_the_lost_threshold_when_present(small):
    pert = small["perturbation"].assign(lost_tau=LOST_TAU["pol"])
    fig = plotting.perturbation(pert, small["crossings"], "pol")
    for ax in _labels(fig):
        dashed = [ln for ln in ax.get_lines() if np.allclose(ln.get_ydata(), LOST_TAU["pol"])]
        assert dashed
    legend = [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]
    assert any("approximation" in t for t in legend)
    plt.close(fig)
    fig = plotting.perturbation(small["perturbation"], small["crossings"], "pol")
    legend = [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]
    assert not any("approximation" in t for t in legend)
    plt.close(fig)


def test_perturbation_roundtrip_all_inf_norm_column(tables, tmp_path):
    """A norm column holding only "inf" is parsed by pandas as a float; still drawn."""
    pert = _roundtrip(tables["perturbation"], tmp_path, "perturbation")
    cross = _roundtrip(tables["crossings"], tmp_path, "crossings")
    assert pert["norm"].eq("inf").all() and np.isinf(pert["error"]).any()
    fig = plotting.perturbation(pert, cross, "pol")
    assert len(_labels(fig)) == 4
    assert all(_crossing_dots(ax) for ax in fig.axes)
    plt.close(fig)


def test_perturbation_band_only_when_something_diverged(tables):
    fig = plotting.perturbation(tables["perturbation"], tables["crossings"], "exp")
    assert "∞" not in [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    plt.close(fig)


def test_perturbation_missing_facet_says_no_data(tables):
    pert = tables["perturbation"]
    pert = pert[~((pert["param"] == "exp") & (pert["activation"] == "tanh"))]
    fig = plotting.perturbation(pert, tables["crossings"].iloc[:0], "exp")
    axes = _labels(fig)
    assert len(axes) == 4 and axes[3].get_title() == "exp / tanh"
    assert [t.get_text() for t in axes[3].texts] == ["no data"]
    assert not any(_crossing_dots(ax) for ax in axes)
    plt.close(fig)


def test_perturbation_unknown_target_is_empty_figure(tables):
    fig = plotting.perturbation(tables["perturbation"], tables["crossings"], "nope")
    assert "no data" in _texts(fig)
    plt.close(fig)


def test_perturbation_several_structures():
    t = make_tables(
        targets=("pol",), params=("direct",), acts=("tanh",), structures=("diagonal", "dense")
    )
    fig = plotting.perturbation(t["perturbation"], t["crossings"], "pol")
    titles = [ax.get_title() for ax in _labels(fig)]
    assert titles == ["diagonal · direct / tanh", "dense · direct / tanh"]
    plt.close(fig)


def _with_lstm(t: dict) -> dict:
    """The rnn tables plus an lstm (no structure, parameterisation or activation) with the
    direct students' numbers."""
    out = {}
    for name in ("perturbation", "crossings", "radius"):
        df = t[name].assign(family="rnn")
        lstm = df[df["param"] == "direct"].assign(
            family="lstm", structure="none", param="none", activation="none"
        )
        out[name] = pd.concat([df, lstm], ignore_index=True)
    return out


def test_perturbation_one_panel_per_kind_when_families_mix():
    t = _with_lstm(
        make_tables(targets=("pol",), params=("direct", "exp"), acts=("tanh",), seeds=(1,))
    )
    fig = plotting.perturbation(t["perturbation"], t["crossings"], "pol")
    titles = [ax.get_title() for ax in _labels(fig)]
    assert titles == ["rnn diagonal direct tanh", "rnn diagonal exp tanh", "lstm"]
    assert all(len(_width_lines(ax)) == len(WIDTHS) for ax in _labels(fig))  # no empty panel
    plt.close(fig)


def test_fold_family_leaves_rnn_tables_alone_and_names_the_others():
    rnn = pd.DataFrame({"family": ["rnn"], "structure": ["diagonal"]})
    assert plotting.fold_family(rnn).equals(rnn)
    mixed = pd.DataFrame({"family": ["ssm", "lru"], "structure": ["diagonal", "none"]})
    assert plotting.fold_family(mixed)["structure"].tolist() == ["ssm diagonal", "lru"]


def test_stability_radius_tells_families_apart():
    t = make_tables(targets=("pol",), params=("direct",), acts=("tanh",), lost=True)
    t = _with_lstm(t) | {"radius": _with_lstm(t)["radius"]}
    fig = plotting.stability_radius(t["radius"], t["crossings"], t["perturbation"])
    labels = [x.get_text() for leg in _legends(fig) for x in leg.get_texts()]
    labels += [
        x.get_text() for ax in fig.axes if ax.get_legend() for x in ax.get_legend().get_texts()
    ]
    assert any("lstm" in label for label in labels), labels
    plt.close(fig)


def _censored(ax) -> list:
    return [ln for ln in ax.get_lines() if ln.get_marker() == "^" and len(ln.get_ydata())]


def test_stability_radius_marks_censored(tables):
    fig = plotting.stability_radius(tables["radius"], tables["crossings"], tables["perturbation"])
    axes = _labels(fig)
    assert len(axes) == 2 * 4  # (crossing, blow-up) x (2 targets x 2 params)
    titles = [ax.get_title() for ax in axes[:4]]
    assert titles == ["exp / direct", "exp / exp", "pol / direct", "pol / exp"]
    assert "crossing" in axes[0].get_ylabel() and "beta^*" in axes[4].get_ylabel()
    assert "τ = 1e3" in axes[4].get_title()
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)
    grid_max = max(BETAS)
    censored = [ln for ax in axes[4:] for ln in _censored(ax)]
    assert censored, "censored radii must be drawn as ^"
    assert all(np.allclose(ln.get_ydata(), grid_max) for ln in censored)
    assert all(ln.get_markerfacecolor() == "white" for ln in censored)
    assert not _censored(axes[6])  # pol / direct blows up on the grid
    legend_texts = [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]
    assert any("censored" in t for t in legend_texts)
    plt.close(fig)


def test_stability_radius_every_measure(small):
    """With the lost columns: rows crossing, blow-up, approximation lost; each with a median
    marker per width and a min-max bar; censored values at the grid max, open."""
    fig = plotting.stability_radius(small["radius"], small["crossings"], small["perturbation"])
    axes = _labels(fig)
    assert len(axes) == 3  # one parameterisation: columns = targets
    labels = [ax.get_ylabel() for ax in axes]
    assert "crossing" in labels[0] and "blow-up" in labels[1] and "lost" in labels[2]
    assert [ax.get_title() for ax in axes] == [
        "pol",
        "pol  (τ = 1e3)",
        "pol  ($\\tau_{\\mathrm{lost}}$ = 0.3)",
    ]
    grid_max = max(BETAS)
    # blow-up: tanh never diverges (censored, at the grid max), linear does
    blow = _censored(axes[1])
    assert sum(len(ln.get_ydata()) for ln in blow) == 2  # tanh at both widths
    assert all(np.allclose(ln.get_ydata(), grid_max) for ln in blow)
    filled = [ln for ln in axes[1].get_lines() if ln.get_marker() == "o" and len(ln.get_ydata())]
    assert filled and all(np.all(ln.get_ydata() < grid_max) for ln in filled)
    # approximation lost: every model loses it on the grid; medians match the table
    assert not _censored(axes[2])
    rad = small["radius"]
    for act, marker in (("linear", "o"), ("tanh", "s")):
        dots = [ln for ln in axes[2].get_lines() if ln.get_marker() == marker]
        y = np.concatenate([ln.get_ydata() for ln in dots])
        sub = rad[rad["activation"] == act]
        expected = sub.groupby("width")["beta_lost"].apply(lambda v: np.exp(np.log(v).median()))
        assert np.allclose(y, expected.to_numpy())
    # min-max bars: one errorbar container per activation and measure
    assert all(len(ax.containers) == 2 for ax in axes)
    plt.close(fig)


def test_stability_radius_lost_censored_and_zero(small):
    """Lost never on the grid: open ^ at the grid max; lost at beta = 0: on a "0" tick."""
    rad = small["radius"].copy()
    lin, tanh = rad["activation"] == "linear", rad["activation"] == "tanh"
    rad.loc[tanh, "beta_lost"], rad.loc[tanh, "lost_censored"] = np.nan, True
    rad.loc[lin & (rad["width"] == 2), "beta_lost"] = 0.0
    fig = plotting.stability_radius(rad, small["crossings"], small["perturbation"])
    ax = _labels(fig)[2]
    cen = _censored(ax)
    assert sum(len(ln.get_ydata()) for ln in cen) == 2
    assert all(np.allclose(ln.get_ydata(), max(BETAS)) for ln in cen)
    zero = [t.get_position()[1] for t in ax.get_yticklabels() if t.get_text() == "0"]
    assert len(zero) == 1
    lin_dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and len(ln.get_ydata())]
    assert np.isclose(lin_dots[0].get_ydata()[0], zero[0])  # width 2, radius 0
    assert "0" not in _yticks(_labels(fig)[1])  # only the lost row has the 0 level
    plt.close(fig)


def test_stability_radius_without_lost_columns(small):
    """Older tables: blow-up and crossings only."""
    old = small["radius"].drop(columns=["lost_tau", "beta_lost", "lost_censored"])
    fig = plotting.stability_radius(old, small["crossings"], small["perturbation"])
    labels = [ax.get_ylabel() for ax in _labels(fig)]
    assert len(labels) == 2 and "crossing" in labels[0] and "blow-up" in labels[1]
    plt.close(fig)
    roundtrip = small["radius"].astype({"lost_censored": str})  # "True"/"False" as text
    fig = plotting.stability_radius(roundtrip, small["crossings"], small["perturbation"])
    assert len(_labels(fig)) == 3
    plt.close(fig)


def test_stability_radius_columns(tables):
    """split_params: columns = target x param (default up to 4), else targets only."""
    args = (tables["radius"], tables["crossings"], tables["perturbation"])
    fig = plotting.stability_radius(*args, split_params=False)
    axes = _labels(fig)
    assert [ax.get_title() for ax in axes[:2]] == ["exp", "pol"] and len(axes) == 4
    groups = [c for c in axes[0].containers]
    assert len(groups) == 2 * 2  # params x activations in one panel
    plt.close(fig)
    t = make_tables(targets=("exp", "pol"), params=("direct", "exp", "softplus"), seeds=(1,))
    fig = plotting.stability_radius(t["radius"], t["crossings"], t["perturbation"])
    axes = _labels(fig)
    # 6 series are more than a panel holds: split by parameterisation (the two small
    # parts share a panel), 2 targets x 2 panels per measure
    assert len(axes) == 2 * 4
    titles = ["exp / direct · exp", "exp / softplus", "pol / direct · exp", "pol / softplus"]
    assert [ax.get_title() for ax in axes[:4]] == titles
    plt.close(fig)


def test_stability_radius_several_structures():
    t = make_tables(
        targets=("pol",),
        params=("direct",),
        acts=("tanh",),
        seeds=(1,),
        structures=("diagonal", "dense"),
    )
    fig = plotting.stability_radius(t["radius"], t["crossings"], t["perturbation"])
    legend_texts = [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]
    assert "dense · tanh" in legend_texts
    plt.close(fig)


def test_student_memory(tables):
    fig = plotting.student_memory(tables["memory"])
    axes = _labels(fig)
    assert [ax.get_title() for ax in axes] == ["exp", "pol"]
    for ax in axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        thick = [ln for ln in ax.get_lines() if ln.get_linewidth() > 2]
        assert len(thick) == 1  # the target
    plt.close(fig)


def test_training(tables):
    fig = plotting.training(tables["history"], tables["training"])
    axes = _labels(fig)
    assert len(axes) == 2 * 2 + 2  # loss curves targets x params, then final loss per target
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert axes[-1].get_xscale() == "log" and "width" in axes[-1].get_xlabel()
    plt.close(fig)


def test_empty_tables_say_no_data(tables):
    for fig in (
        plotting.target_memory(tables["memory"].iloc[:0]),
        plotting.student_memory(tables["memory"].iloc[:0]),
        plotting.training(tables["history"].iloc[:0], tables["training"].iloc[:0]),
        plotting.perturbation(tables["perturbation"].iloc[:0], tables["crossings"].iloc[:0], "pol"),
        plotting.stability_radius(
            tables["radius"].iloc[:0], tables["crossings"].iloc[:0], tables["perturbation"]
        ),
    ):
        axes = _labels(fig)
        assert len(axes) == 1 and not axes[0].get_lines()  # one panel, nothing drawn
        assert "no data" in _texts(fig) + [axes[0].get_title()]
        plt.close(fig)


def test_tables_without_columns(tables):
    """A crossings (or radius) table with no rows and no header is drawn as "no data"."""
    fig = plotting.perturbation(tables["perturbation"], pd.DataFrame(), "pol")
    assert len(_labels(fig)) == 4
    plt.close(fig)
    fig = plotting.stability_radius(tables["radius"], pd.DataFrame(), pd.DataFrame())
    assert "no data" in [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)


def test_radius_mixed_censoring_over_seeds():
    """Censored in 2 of 3 seeds: the median is censored (^ at the grid maximum)."""
    t = make_tables(targets=("pol",), params=("direct",), acts=("tanh",), seeds=(1, 2, 3))
    rad = t["radius"].copy()
    pick = rad["seed"] >= 2
    rad.loc[pick, "censored"] = True
    rad.loc[pick, "beta_star"] = np.nan
    fig = plotting.stability_radius(rad, t["crossings"], t["perturbation"])
    tri = [ln for ln in fig.axes[1].get_lines() if ln.get_marker() == "^"]
    assert sum(len(ln.get_ydata()) for ln in tri) == len(WIDTHS)
    assert all(np.allclose(ln.get_ydata(), max(BETAS)) for ln in tri if len(ln.get_ydata()))
    plt.close(fig)


def test_all_diverged_panel(tables):
    """Every error inf (and some NaN): drawn in the band, no crash."""
    pert = tables["perturbation"].assign(error=np.inf)
    pert.loc[pert.index[:5], "error"] = np.nan
    fig = plotting.perturbation(pert, tables["crossings"], "exp")
    assert len(_labels(fig)) == 4
    for ax in _labels(fig):
        inf_tick = [t.get_position()[1] for t in ax.get_yticklabels() if t.get_text() == "∞"]
        for line in _width_lines(ax):
            assert np.allclose(line.get_ydata(), inf_tick[0])
    plt.close(fig)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["perturbation", "stability_radius"])
def test_small_tables_byte_identical(small, tmp_path, name):
    """The paper-style figures (seed bands, crossings, lost radius) rebuild byte-identically."""
    args = {
        "perturbation": (small["perturbation"], small["crossings"], "pol"),
        "stability_radius": (small["radius"], small["crossings"], small["perturbation"]),
    }[name]
    outputs = []
    for run in (1, 2):
        png, pdf = tmp_path / f"{run}.png", tmp_path / f"{run}.pdf"
        plotting.save_figure(getattr(plotting, name)(*args), png, pdf)
        outputs.append((png.read_bytes(), pdf.read_bytes()))
    assert outputs[0][0][:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs[0] == outputs[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["target_memory", "perturbation", "stability_radius", "student_memory", "training"]
)
def test_save_is_byte_identical(tables, tmp_path, name):
    args = {
        "target_memory": (tables["memory"],),
        "perturbation": (tables["perturbation"], tables["crossings"], "pol"),
        "stability_radius": (tables["radius"], tables["crossings"], tables["perturbation"]),
        "student_memory": (tables["memory"],),
        "training": (tables["history"], tables["training"]),
    }[name]
    outputs = []
    for run in (1, 2):
        png, pdf = tmp_path / f"{run}.png", tmp_path / f"{run}.pdf"
        plotting.save_figure(getattr(plotting, name)(*args), png, pdf)
        outputs.append((png.read_bytes(), pdf.read_bytes()))
    assert outputs[0][0][:8] == b"\x89PNG\r\n\x1a\n" and outputs[0][1][:5] == b"%PDF-"
    assert outputs[0] == outputs[1]
    assert b"CreationDate" not in outputs[0][1]


SCRIPTS = {
    "plot_target_memory": {"memory": "memory"},
    "plot_perturbation": {"perturbation": "perturbation", "crossings": "crossings"},
    "plot_stability_radius": {
        "radius": "radius",
        "crossings": "crossings",
        "perturbation": "perturbation",
    },
    "plot_student_memory": {"memory": "memory"},
    "plot_training": {"history": "history", "training": "training"},
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_snakemake_scripts(tables, tmp_path, monkeypatch, script):
    """Each thin script reads its named inputs and writes png + pdf (snakemake object faked)."""
    inputs = {}
    for name, table in SCRIPTS[script].items():
        inputs[name] = str(tmp_path / f"{table}.tsv")
        tables[table].to_csv(inputs[name], sep="\t", index=False)
    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"
    smk = SimpleNamespace(
        input=SimpleNamespace(**inputs),
        output=SimpleNamespace(png=str(png), pdf=str(pdf)),
        log=[str(tmp_path / "log.txt")],
        wildcards=SimpleNamespace(target="pol"),
        params=SimpleNamespace(),
    )
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # the script redirects it to the log
    path = Path(__file__).parents[1] / "workflow" / "scripts" / f"{script}.py"
    runpy.run_path(str(path), init_globals={"snakemake": smk})
    sys.stderr.close()
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:5] == b"%PDF-"


def test_sensitivity_draws_every_measure_with_its_ci_per_setting_and_param():
    rows = []
    for target in ("exp", "pol"):
        for param in ("direct", "softplus"):
            for measure in ("crossing", "blowup", "lost"):
                slope = -1.0 if (target, param) == ("pol", "direct") else 0.0
                rows.append(
                    dict(target=target, structure="diagonal", param=param, activation="tanh",
                         norm="inf", measure=measure, slope=slope, ci_low=slope - 0.5,
                         ci_high=slope + 0.5, n=15, n_censored=0)
                )  # fmt: skip
    fig = plotting.sensitivity(pd.DataFrame(rows))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["crossing points", "blow-up radius", "approximation-lost radius"]
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["exp · diagonal · inf · tanh", "pol · diagonal · inf · tanh"]
    for ax in fig.axes:
        assert len(ax.containers) == 2  # one errorbar per parameterisation
        xs = sorted(x for c in ax.containers for x in c.lines[0].get_xdata())
        assert xs == [-1.0, 0.0, 0.0, 0.0]
    plt.close(fig)
    old = pd.DataFrame([r for r in rows if r["measure"] != "lost"])
    assert len(plotting.sensitivity(old).axes) == 2  # tables from before the lost radius
    # a CI left open by censored values reaches the panel's edge; training readings
    # (norm "none": loss, rate) are not stability measures and are left out
    rows[0] |= {"ci_low": -math.inf}
    rows.append(rows[1] | {"measure": "rate", "norm": "none"})
    fig = plotting.sensitivity(pd.DataFrame(rows))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    segments = [seg for c in ax.containers for lc in c.lines[2] for seg in lc.get_segments()]
    assert math.isfinite(lo) and min(seg[:, 0].min() for seg in segments) == pytest.approx(lo)
    assert len(fig.axes) == 3
    plt.close(fig)


# ------------------------------------------------------------------ layout (issue 24 item 7)

FAMILIES = (  # the families study: 4 rnn + 4 ssm kinds, lru, lstm, gru = 11 kinds
    ("rnn", ("diagonal", "orthogonal"), ("direct", "softplus"), ("tanh",)),
    ("ssm", ("diagonal", "orthogonal"), ("direct", "softplus"), ("tanh",)),
    ("lru", ("none",), ("none",), ("none",)),
    ("lstm", ("none",), ("none",), ("none",)),
    ("gru", ("none",), ("none",), ("none",)),
)


@pytest.fixture(scope="module")
def families():
    """Result tables of 11 kinds of students (as the families study writes them)."""
    parts = []
    for fam, structs, params, acts in FAMILIES:
        t = make_tables(
            params=params, acts=acts, structures=structs, seeds=(1, 2), widths=(2, 4, 8), lost=True
        )
        parts.append({k: v.assign(family=fam) for k, v in t.items()})
    return {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in parts[0]}


def _grid_shape(fig) -> tuple[int, int]:
    return _labels(fig)[0].get_subplotspec().get_gridspec().get_geometry()


def _assert_readable(fig) -> None:
    """Aspect between 0.5 and 4; the suptitle's box clear of every legend's box; every
    legend clear of every panel."""
    fig.canvas.draw()
    width, height = fig.get_size_inches()
    assert 0.5 <= width / height <= 4, (width, height)
    legends = _legends(fig)
    assert legends
    titles = [t for t in fig.texts if fig.get_suptitle() and t.get_text() == fig.get_suptitle()]
    for leg in legends:
        box = leg.get_window_extent()
        for text in titles:
            assert not text.get_window_extent().overlaps(box), text.get_text()
        for ax in _labels(fig):
            assert not ax.get_window_extent().overlaps(box), ax.get_title()


def _series_styles(ax) -> set[tuple[str, str]]:
    """(colour, marker) of the series drawn in a stability panel (censored ^ left out)."""
    return {
        (to_hex(ln.get_color()), ln.get_marker())
        for ln in ax.get_lines()
        if ln.get_marker() not in ("^", "None", "", None) and len(ln.get_xdata())
    }


def test_style_map_gives_every_series_its_own_colour_and_marker():
    keys = [(p, s, a) for p in ("direct", "exp", "softplus") for s in "abcd" for a in "xyz"]
    styles = plotting.style_map(keys)
    assert len(set(styles.values())) == len(keys) == 36  # pairs distinct past 12 keys
    first = [styles[k] for k in sorted(keys)[:12]]
    assert len({c for c, _ in first}) == len({m for _, m in first}) == 12
    assert "^" not in {m for _, m in styles.values()}  # kept for censored values
    assert plotting.style_map(reversed(keys)) == styles  # from the sorted keys


def test_stability_radius_families_as_small_multiples(families):
    t = families
    fig = plotting.stability_radius(t["radius"], t["crossings"], t["perturbation"])
    axes = _labels(fig)
    # 2 targets x 3 panels (rnn, ssm, lru · lstm · gru), one block of rows per target
    assert _grid_shape(fig) == (2 * 3, 3)
    assert [ax.get_title() for ax in axes[:3]] == [
        "exp / rnn",
        "exp / ssm",
        "exp / lru · lstm · gru",
    ]
    _assert_readable(fig)
    legend = [h for leg in _legends(fig) for h in leg.legend_handles]
    series = [(to_hex(h.get_color()), h.get_marker()) for h in legend if h.get_marker() != "^"]
    series = [s for s in series if s[1] not in ("None", "")]
    assert len(series) == len(set(series)) == 11  # one (colour, marker) per kind
    assert len({c for c, _ in series}) == len({m for _, m in series}) == 11
    for ax in axes:  # one errorbar (min-max over seeds) per series drawn in a panel
        colours = [to_hex(c.lines[0].get_color()) for c in ax.containers]
        assert 0 < len(colours) == len(set(colours)) <= plotting.MAX_SERIES
        assert _series_styles(ax) <= set(series)
    plt.close(fig)


def test_perturbation_families_as_a_grid(families):
    fig = plotting.perturbation(families["perturbation"], families["crossings"], "pol")
    axes = _labels(fig)
    assert len(axes) == 11
    rows, cols = _grid_shape(fig)
    assert (rows, cols) == (3, 4)  # rnn, ssm, then lru · lstm · gru
    assert [ax.get_title() for ax in axes[8:]] == ["lru", "lstm", "gru"]
    assert all(len(_width_lines(ax)) <= plotting.MAX_SERIES for ax in axes)
    # the lowest panel of every column reads its beta axis
    assert [ax.get_xlabel() != "" for ax in axes] == [False] * 4 + [False] * 3 + [True] * 4
    _assert_readable(fig)
    plt.close(fig)


def test_perturbation_title_clear_of_legend_when_narrow(small):
    fig = plotting.perturbation(small["perturbation"], small["crossings"], "pol")
    _assert_readable(fig)
    plt.close(fig)


def test_student_memory_families_as_small_multiples(families):
    fig = plotting.student_memory(families["memory"])
    axes = _labels(fig)
    assert _grid_shape(fig)[1] > 1
    for ax in axes:
        thin = {(to_hex(ln.get_color()), ln.get_marker()) for ln in ax.get_lines()[:-1]}
        assert 0 < len(thin) <= plotting.MAX_SERIES
    _assert_readable(fig)
    plt.close(fig)
