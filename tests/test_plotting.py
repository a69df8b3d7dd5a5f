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

from curse_memory import plotting

BETAS = [0.0] + [1e-3 * 2 ** (i * 0.5) for i in range(21)]
WIDTHS = (2, 4, 8, 16)
KEYS = ("target", "structure", "param", "activation")


FACTOR = {"direct": 1.0, "exp": 1.4, "softplus": 1.8, "best": 2.4, "tanh": 1.2, "hardtanh": 1.5}


def _error_curve(target: str, param: str, act: str, width: int, seed: int) -> np.ndarray:
    """E_m(beta): falls with m at beta = 0; direct on pol blows up at beta ~ 0.3 / m."""
    f = FACTOR.get(param, 1.0) * FACTOR.get(act, 1.0) * (1 + 0.1 * seed)
    e0 = (1e-2 if target == "pol" else 1e-3) / width * f
    err = np.array([e0 + (b * width**0.5 * f) ** 2 for b in BETAS])
    if target == "pol" and param == "direct":
        err[np.array(BETAS) > 0.3 / width] = np.inf
    return np.maximum.accumulate(err)


def make_tables(
    targets=("exp", "pol"),
    params=("direct", "exp"),
    acts=("linear", "tanh"),
    seeds=(1, 2),
    structures=("diagonal",),
    tau=1e3,
) -> dict[str, pd.DataFrame]:
    pert, rad, cross = [], [], []
    for key in ((t, s, p, a) for t in targets for s in structures for p in params for a in acts):
        for seed in seeds:
            curves = {m: _error_curve(key[0], key[2], key[3], m, seed) for m in WIDTHS}
            for m, err in curves.items():
                base = dict(zip(KEYS, key, strict=True), width=m, seed=seed, norm="inf")
                for b, e in zip(BETAS, err, strict=True):
                    pert.append({**base, "beta": b, "error": e, "error_max": e})
                ok = [b for b, e in zip(BETAS, err, strict=True) if e <= tau]
                cen = bool(np.all(err <= tau))
                rad.append(
                    {**base, "tau": tau, "beta_star": math.nan if cen else max(ok), "censored": cen}
                )
            for narrow, wide in zip(WIDTHS[:-1], WIDTHS[1:], strict=True):
                hit = [
                    b
                    for b, en, ew in zip(BETAS, curves[narrow], curves[wide], strict=True)
                    if b > 0 and ew >= en
                ]
                cross.append(
                    {
                        **dict(zip(KEYS, key, strict=True)),
                        "seed": seed,
                        "norm": "inf",
                        "width_narrow": narrow,
                        "width": wide,
                        "beta_cross": hit[0] if hit else math.nan,
                        "status": "crossed" if hit else "never",
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
                                "subject": f"{target}/diagonal/{p}/{a}/w{m}/s1",
                                "kind": "student",
                                "target": target,
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


def test_perturbation_facets_and_inf_band(tables):
    fig = plotting.perturbation(tables["perturbation"], tables["crossings"], "pol")
    axes = _labels(fig)
    assert len(axes) == 2 * 2  # 2 activations x 2 params
    assert [ax.get_title() for ax in axes[:2]] == ["direct", "exp"]
    assert "E_m" in axes[0].get_ylabel() and "linear" in axes[0].get_ylabel()
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert "∞" in labels
    assert "0" in [t.get_text() for t in axes[2].get_xticklabels()]  # bottom row
    for ax in axes:  # nothing infinite or non-positive reaches a log axis
        for line in ax.get_lines():
            if line.get_transform() is not ax.transData:
                continue  # the axvline marking the beta = 0 break
            y = np.asarray(line.get_ydata(), dtype=float)
            assert np.all(np.isfinite(y[~np.isnan(y)])) and np.all(y[~np.isnan(y)] > 0)
    plt.close(fig)


def test_perturbation_roundtrip_all_inf_norm_column(tables, tmp_path):
    """A norm column holding only "inf" is parsed by pandas as a float; still drawn."""
    pert = _roundtrip(tables["perturbation"], tmp_path, "perturbation")
    cross = _roundtrip(tables["crossings"], tmp_path, "crossings")
    assert pert["norm"].eq("inf").all() and np.isinf(pert["error"]).any()
    fig = plotting.perturbation(pert, cross, "pol")
    assert len(_labels(fig)) == 4
    # crossing dots (black edge) were drawn
    dots = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_markeredgecolor() == "black"]
    assert dots
    plt.close(fig)


def test_perturbation_band_only_when_something_diverged(tables):
    fig = plotting.perturbation(tables["perturbation"], tables["crossings"], "exp")
    assert "∞" not in [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    plt.close(fig)


def test_perturbation_missing_facet_says_no_data(tables):
    pert = tables["perturbation"]
    pert = pert[~((pert["param"] == "exp") & (pert["activation"] == "tanh"))]
    fig = plotting.perturbation(pert, tables["crossings"].iloc[:0], "exp")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no data" in texts
    plt.close(fig)


def test_perturbation_unknown_target_is_empty_figure(tables):
    fig = plotting.perturbation(tables["perturbation"], tables["crossings"], "nope")
    assert "no data" in [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)


def test_stability_radius_marks_censored(tables):
    fig = plotting.stability_radius(tables["radius"], tables["crossings"], tables["perturbation"])
    axes = _labels(fig)
    assert len(axes) == 2 * 2  # 2 targets x (crossing, radius)
    assert "beta^*" in axes[1].get_ylabel() and "crossing" in axes[0].get_ylabel()
    assert axes[1].get_xscale() == "log" and axes[1].get_yscale() == "log"
    grid_max = max(BETAS)
    censored = [
        ln for ln in axes[1].get_lines() if ln.get_marker() == "^" and len(ln.get_ydata()) > 0
    ]
    assert censored, "censored radii must be drawn as ^"
    assert all(np.allclose(ln.get_ydata(), grid_max) for ln in censored)
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any("censored" in t for t in legend_texts)
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
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
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


def test_empty_tables_do_not_crash(tables):
    for fig in (
        plotting.target_memory(tables["memory"].iloc[:0]),
        plotting.student_memory(tables["memory"].iloc[:0]),
        plotting.training(tables["history"].iloc[:0], tables["training"].iloc[:0]),
        plotting.stability_radius(
            tables["radius"].iloc[:0], tables["crossings"].iloc[:0], tables["perturbation"]
        ),
    ):
        assert isinstance(fig, plt.Figure)
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
    plt.close(fig)


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
