"""Perturbation stability (method §3): draws, sweeps, divergence, envelopes, radii, crossings."""

import math

import numpy as np
import pytest
import torch

from curse_memory.curves import (
    approximation_lost_radius,
    crossing_point,
    monotone_envelope,
    stability_radius,
)
from curse_memory.model import StudentConfig, StudentRNN
from curse_memory.perturbation import NORMS, beta_grid, draw_perturbations, perturbation_sweep
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import evaluate

F64 = torch.float64


def student(seed=0, **kwargs):
    cfg = StudentConfig(**{"width": 4, "dtype": "float64", **kwargs})
    model = StudentRNN(cfg, generator=torch.Generator().manual_seed(seed)).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed + 100)
    model.b.copy_(0.2 * torch.randn(model.b.shape, generator=gen, dtype=F64))
    model.c0.fill_(0.1)
    return model


def sweep_data(T=30, n=16, kernel="pol"):
    data = make_target(TargetSpec(kernel=kernel, T=T), 1, 1, n, seed=3)
    return data["x_test"], data["y_test"]


# ------------------------------------------------------------------ draws
@pytest.mark.parametrize("beta", [1e-3, 0.0707, 1.0])
def test_inf_norm_draws_have_max_abs_exactly_beta_per_tensor(beta):
    params = student(structure="orthogonal").raw_params()
    delta = draw_perturbations(params, beta, 7, "inf", torch.Generator().manual_seed(0))
    assert delta.keys() == params.keys()
    for k, v in delta.items():
        assert v.shape == (7, *params[k].shape) and v.dtype == F64
        peaks = v.abs().reshape(7, -1).amax(dim=1)
        assert (peaks == beta).all(), k
        if v[0].numel() > 1:  # a one-entry tensor is moved by +-beta, nothing else
            assert not torch.equal(v[0], v[1])  # independent draws


def test_inf_norm_draws_in_float32():
    params = student(dtype="float32").raw_params()
    delta = draw_perturbations(params, 0.3, 5, "inf", torch.Generator().manual_seed(1))
    for v in delta.values():
        assert v.dtype == torch.float32
        assert (v.abs().reshape(5, -1).amax(dim=1) == torch.tensor(0.3)).all()


def test_l2_draws_have_global_norm_beta():
    params = student(structure="dense").raw_params()
    beta = 0.25
    delta = draw_perturbations(params, beta, 9, "l2", torch.Generator().manual_seed(2))
    total = torch.sqrt(sum(v.pow(2).reshape(9, -1).sum(1) for v in delta.values()))
    torch.testing.assert_close(total, torch.full((9,), beta, dtype=F64), rtol=1e-12, atol=0)
    # the l2 budget is shared, so no single tensor reaches beta in max-abs
    assert all((v.abs().reshape(9, -1).amax(1) < beta).all() for v in delta.values())


def test_unknown_norm_raises_with_allowed_list():
    model = student()
    x, y = sweep_data()
    for call in (
        lambda: draw_perturbations(model.raw_params(), 0.1, 2, "l1", torch.Generator()),
        lambda: perturbation_sweep(model, x, y, [0.1], 2, "l1", torch.Generator()),
    ):
        with pytest.raises(ValueError) as info:
            call()
        for name in NORMS:
            assert name in str(info.value)


# ------------------------------------------------------------------ sweeps
@pytest.mark.parametrize(
    "kwargs",
    [
        {"structure": "orthogonal", "activation": "tanh", "parameterisation": "softplus"},
        {"structure": "diagonal", "activation": "linear", "parameterisation": "direct"},
        {"structure": "dense", "activation": "hardtanh"},
    ],
)
@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_batched_sweep_equals_sequential_draw_for_draw(kwargs, norm):
    model = student(**kwargs)
    x, y = sweep_data()
    betas = [0.0, 1e-3, 0.03, 0.3]
    rows = {
        batched: perturbation_sweep(
            model, x, y, betas, 5, norm, torch.Generator().manual_seed(42), batched=batched
        )
        for batched in (True, False)
    }
    for fast, slow in zip(rows[True], rows[False], strict=True):
        assert fast["beta"] == slow["beta"]
        np.testing.assert_allclose(fast["errors"], slow["errors"], rtol=1e-12, atol=0)
        assert fast["error"] == pytest.approx(max(slow["errors"]), rel=1e-12)
        for key in ("n_diverged", "n_eig_negative", "n_eig_euler"):
            assert fast[key] == slow[key]
    assert len(rows[True][0]["errors"]) == 1  # beta = 0 is evaluated once
    assert all(len(row["errors"]) == 5 for row in rows[True][1:])
    errors = rows[True][-1]["errors"]
    assert len(set(errors)) == 5  # five distinct draws
    assert rows[True][-1]["error"] > rows[True][0]["error"]


@pytest.mark.parametrize("parameterisation", ["direct", "exp", "best"])
def test_beta_zero_gives_clean_test_loss(parameterisation):
    model = student(parameterisation=parameterisation, activation="tanh")
    model.project_()
    x, y = sweep_data()
    rows = perturbation_sweep(model, x, y, [0.0], 3, "inf", torch.Generator().manual_seed(0))
    assert rows[0]["error"] == pytest.approx(evaluate(model, x, y), rel=1e-12)
    assert rows[0]["n_diverged"] == rows[0]["n_eig_negative"] == rows[0]["n_eig_euler"] == 0


def test_sweep_leaves_the_model_unchanged():
    model = student(structure="orthogonal", activation="tanh")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = sweep_data()
    perturbation_sweep(model, x, y, [0.0, 0.5], 4, "inf", torch.Generator().manual_seed(0))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("fast_linear", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_direct_negative_eigenvalue_is_recorded_as_divergence(fast_linear, batched):
    # width 1, so the inf-norm draw moves w by exactly +-beta: a = 0.5 -> -0.5 or 1.5.
    # a = -0.5 gives |1 - dt a| = 1.5 and 1.5^300 overflows float32.
    T, beta, repeats = 300, 1.0, 16
    cfg = StudentConfig(width=1, eig_init=(0.5, 0.5), dtype="float32", fast_linear=fast_linear)
    model = StudentRNN(cfg, generator=torch.Generator().manual_seed(0)).requires_grad_(False)
    x = torch.randn(4, T, 1, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(4, T, 1, dtype=F64)
    rows = perturbation_sweep(
        model, x, y, [0.0, beta], repeats, "inf", torch.Generator().manual_seed(7), batched
    )
    clean, row = rows
    assert math.isfinite(clean["error"]) and clean["n_diverged"] == 0
    assert 0 < row["n_eig_negative"] < repeats
    assert row["n_diverged"] == row["n_eig_negative"]
    assert row["error"] == math.inf
    assert len(row["errors"]) == repeats
    # the same draws again: exactly the draws with w + delta < 0 diverged
    delta = draw_perturbations(
        model.raw_params(), beta, repeats, "inf", torch.Generator().manual_seed(7)
    )
    negative = (model.w + delta["w"])[:, 0] < 0
    diverged = torch.tensor([not math.isfinite(e) for e in row["errors"]])
    assert torch.equal(negative, diverged)
    assert all(e < 1e6 for e, bad in zip(row["errors"], diverged, strict=True) if not bad)


def test_stable_parameterisation_never_has_negative_eigenvalues_under_large_beta():
    x, y = sweep_data(T=20, n=4)
    for name in ("exp", "softplus", "best"):
        model = student(parameterisation=name, width=6)
        rows = perturbation_sweep(
            model, x, y, [0.0, 1.0, 5.0, 20.0], 8, "inf", torch.Generator().manual_seed(0)
        )
        assert all(row["n_eig_negative"] == 0 for row in rows), name
        if name == "exp":  # exp(w + 5) crosses the Euler bound 2/dt: recorded as such
            assert rows[2]["n_eig_euler"] > 0
        if name == "best":  # a <= 1/eps < 2/dt whatever the perturbation
            assert all(row["n_eig_euler"] == 0 for row in rows)


# ------------------------------------------------------------------ envelopes, radii
def test_beta_grid_defaults():
    grid = beta_grid()
    assert len(grid) == 22
    assert grid[0] == 0.0 and grid[1] == 1e-3
    assert grid[-1] == pytest.approx(1.024)
    assert all(b2 > b1 for b1, b2 in zip(grid, grid[1:], strict=False))
    assert grid[3] / grid[2] == pytest.approx(math.sqrt(2))


def test_monotone_envelope():
    errors = [1.0, 0.5, 2.0, float("nan"), 3.0, 1.0]
    env = monotone_envelope(errors)
    np.testing.assert_array_equal(env, [1.0, 1.0, 2.0, np.inf, np.inf, np.inf])
    rng = np.random.default_rng(0)
    env = monotone_envelope(rng.exponential(size=50))
    assert (np.diff(env) >= 0).all()


def test_stability_radius():
    betas = [0.0, 0.1, 0.2, 0.4, 0.8]
    env = monotone_envelope([1.0, 2.0, 5.0, 10.0, np.inf])
    assert stability_radius(betas, env, tau=3.0) == (0.1, False)
    assert stability_radius(betas, env, tau=10.0) == (0.4, False)
    beta, censored = stability_radius(betas, [1.0, 1.0, 1.0, 2.0, 2.0], tau=3.0)
    assert censored is True and math.isnan(beta)
    assert stability_radius(betas, env, tau=0.5) == (0.0, False)


def test_approximation_lost_radius():
    betas = [0.0, 0.1, 0.2, 0.4, 0.8]
    env = monotone_envelope([0.5, 0.8, 1.5, 3.0, 2.0])
    assert approximation_lost_radius(betas, env, threshold=1.0) == (0.2, False)  # first above
    assert approximation_lost_radius(betas, env, threshold=0.8) == (0.2, False)  # equal: not lost
    beta, censored = approximation_lost_radius(betas, env, threshold=3.0)  # never above
    assert censored is True and math.isnan(beta)
    diverged = monotone_envelope([0.5, 0.6, np.inf, 0.7, np.nan])
    assert approximation_lost_radius(betas, diverged, threshold=1e30) == (0.2, False)
    assert approximation_lost_radius(betas, [0.5, np.nan, np.nan], 1e30) == (0.1, False)
    assert approximation_lost_radius(betas, env, threshold=0.4) == (0.0, False)  # E(0) above
    # with a finite curve it is the grid beta right after the blow-up radius at that threshold
    beta_star, _ = stability_radius(betas, env, tau=1.0)
    assert betas[betas.index(beta_star) + 1] == approximation_lost_radius(betas, env, 1.0)[0]


def test_crossing_point_statuses():
    betas = [0.0, 0.1, 0.2, 0.4]
    narrow = [1.0, 1.0, 2.0, 4.0]
    assert crossing_point(betas, narrow, [0.5, 0.8, 2.5, 5.0]) == (0.2, "crossed")
    assert crossing_point(betas, narrow, [0.5, 1.0, 1.5, 5.0]) == (0.1, "crossed")  # equality
    beta, status = crossing_point(betas, narrow, [0.5, 0.6, 0.7, 0.8])
    assert status == "never" and math.isnan(beta)
    beta, status = crossing_point(betas, narrow, [1.0, 0.6, 0.7, 0.8])
    assert status == "not_monotone" and math.isnan(beta)
    assert crossing_point(betas, narrow, [0.5, 0.6, np.inf, np.inf]) == (0.2, "crossed")
