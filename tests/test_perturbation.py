"""Perturbation stability (method §3): draws, sweeps, divergence, envelopes, radii, crossings."""

import itertools
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
from curse_memory.perturbation import (
    NORMS,
    ascend,
    batched_mse,
    beta_grid,
    draw_perturbations,
    perturbation_sweep,
    perturbed_masks,
    unit_directions,
)
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


# ------------------------------------------------------------------ common random directions
@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_directions_are_common_across_beta(norm):
    model = student(structure="orthogonal", activation="tanh")
    params = model.raw_params()
    draws = {
        beta: draw_perturbations(params, beta, 6, norm, torch.Generator().manual_seed(5))
        for beta in (0.01, 0.3)
    }
    for k in params:
        torch.testing.assert_close(draws[0.3][k], draws[0.01][k] * 30, rtol=1e-12, atol=0)
    # the sweep scales one set of directions: its errors are those of beta * direction i
    x, y = sweep_data()
    betas = [0.0, 0.01, 0.3]
    rows = perturbation_sweep(model, x, y, betas, 6, norm, torch.Generator().manual_seed(5))
    unit = unit_directions(params, 6, norm, torch.Generator().manual_seed(5))
    for beta, row in zip(betas[1:], rows[1:], strict=True):
        drawn = {k: v.unsqueeze(0) + beta * unit[k] for k, v in params.items()}
        expected = batched_mse(drawn, x, y, model.config)
        np.testing.assert_allclose(row["errors"], expected.tolist(), rtol=1e-12)
    again = perturbation_sweep(model, x, y, betas, 6, norm, torch.Generator().manual_seed(5))
    assert [r["errors"] for r in again] == [r["errors"] for r in rows]  # deterministic
    other = perturbation_sweep(model, x, y, betas, 6, norm, torch.Generator().manual_seed(6))
    assert other[-1]["errors"] != rows[-1]["errors"]


@pytest.mark.parametrize("beta", [1e-3, 0.0707, 1.0])
def test_scaled_directions_have_exact_sizes(beta):
    params = student(structure="dense").raw_params()
    for norm in NORMS:
        unit = unit_directions(params, 5, norm, torch.Generator().manual_seed(3))
        delta = {k: beta * v for k, v in unit.items()}
        if norm == "inf":
            for v in delta.values():
                assert (v.abs().reshape(5, -1).amax(1) == beta).all()
        else:
            total = torch.sqrt(sum(v.pow(2).reshape(5, -1).sum(1) for v in delta.values()))
            torch.testing.assert_close(total, torch.full((5,), beta, dtype=F64), rtol=1e-12, atol=0)


def test_tensors_restrict_the_perturbation():
    model = student(structure="orthogonal")
    params = model.raw_params()
    masks = perturbed_masks(params, model.config, ["c", "c0"])
    for norm in NORMS:
        delta = draw_perturbations(params, 0.2, 4, norm, torch.Generator().manual_seed(0), masks)
        assert all(not v.any() for k, v in delta.items() if k not in ("c", "c0"))
        moved = torch.cat([delta["c"].reshape(4, -1), delta["c0"].reshape(4, -1)], 1)
        if norm == "l2":
            torch.testing.assert_close(moved.norm(dim=1), torch.full((4,), 0.2, dtype=F64))
        else:
            assert (delta["c"].abs().reshape(4, -1).amax(1) == 0.2).all()
    with pytest.raises(ValueError, match="unknown parameter tensors"):
        perturbed_masks(params, model.config, ["nope"])


# ------------------------------------------------------------------ gated biases
@pytest.mark.parametrize("family", ["lstm", "gru"])
@pytest.mark.parametrize("norm", NORMS)
def test_gated_families_perturb_one_bias_per_gate(family, norm):
    cfg = StudentConfig(width=3, dtype="float64", family=family)
    model = StudentRNN(cfg, generator=torch.Generator().manual_seed(0))
    params = model.raw_params()
    masks = perturbed_masks(params, cfg)
    delta = draw_perturbations(params, 0.5, 4, norm, torch.Generator().manual_seed(1), masks)
    m = cfg.width
    if family == "lstm":  # b_ih + b_hh is the gates' one bias: only b_ih moves
        assert "bias_hh" not in masks and not delta["bias_hh"].any()
    else:  # gru: r and z's hidden biases are redundant, n's is scaled by r
        assert not delta["bias_hh"][:, : 2 * m].any() and delta["bias_hh"][:, 2 * m :].all()
    # the bias of each gate moves by exactly beta (inf), as the rnn's b (the gru's n gate
    # has two biases, b_in outside the reset gate and b_hn inside it: each moves by beta)
    if norm == "inf":
        assert (delta["bias_ih"].abs().amax(1) == 0.5).all()
        assert (delta["bias_hh"].abs().amax(1) == (0 if family == "lstm" else 0.5)).all()
    else:
        total = torch.sqrt(sum(v.pow(2).reshape(4, -1).sum(1) for v in delta.values()))
        torch.testing.assert_close(total, torch.full((4,), 0.5, dtype=F64))
    x, y = sweep_data(T=12, n=4)
    rows = perturbation_sweep(model, x, y, [0.0, 0.5], 4, norm, torch.Generator().manual_seed(1))
    drawn = {k: v.detach().unsqueeze(0) + delta[k] for k, v in params.items()}
    np.testing.assert_allclose(
        rows[1]["errors"], batched_mse(drawn, x, y, cfg).tolist(), rtol=1e-12
    )


# ------------------------------------------------------------------ ascent
def readout_vertices(model, x, y, beta):
    """Errors at every vertex of the inf-ball of the readout (c, c0): a convex quadratic in
    the perturbation, so its maximum over the ball is the largest of them."""
    params = {k: v.detach() for k, v in model.raw_params().items()}
    m = model.config.width
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=m + 1)), dtype=F64)
    k = signs.shape[0]
    drawn = {name: v.unsqueeze(0).expand(k, *v.shape).clone() for name, v in params.items()}
    drawn["c"] = drawn["c"] + beta * signs[:, None, :m]
    drawn["c0"] = drawn["c0"] + beta * signs[:, m:]
    return batched_mse(drawn, x, y, model.config)


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("beta", [0.01, 0.2, 1.0])
def test_ascent_reaches_the_enumerated_worst_readout_perturbation(width, beta):
    model = student(width=width, seed=width)
    x, _ = sweep_data(kernel="exp")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(width), dtype=F64)
    y = model(x) + 0.1 * noise  # E(0) about 0.01: the perturbation's quadratic dominates
    worst = float(readout_vertices(model, x, y, beta).max())
    rows = perturbation_sweep(
        model, x, y, [beta], 10, "inf", torch.Generator().manual_seed(width),
        method="ascent", steps=20, tensors=["c", "c0"],
    )  # fmt: skip
    row = rows[0]
    assert max(row["errors_sampled"]) < worst  # sampling alone falls short
    assert row["error"] >= 0.99 * worst
    assert row["error"] <= worst * (1 + 1e-9)  # and never leaves the ball
    assert all(a >= s for a, s in zip(row["errors"], row["errors_sampled"], strict=True))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"structure": "orthogonal", "activation": "tanh", "parameterisation": "softplus"},
        {"structure": "diagonal", "activation": "linear", "parameterisation": "direct"},
        {"structure": "diagonal", "activation": "hardtanh", "parameterisation": "exp"},
        {"structure": "dense", "activation": "tanh", "family": "ssm"},
        {"family": "lru"},
        {"family": "lstm"},
        {"family": "gru"},
    ],
)
@pytest.mark.parametrize("norm", NORMS)
def test_ascent_never_falls_below_sampling_and_stays_in_the_ball(kwargs, norm):
    if kwargs.get("family") in ("lru", "lstm", "gru"):
        cfg = StudentConfig(width=3, dtype="float64", **kwargs)
        model = StudentRNN(cfg, generator=torch.Generator().manual_seed(0))
    else:
        model = student(width=3, **kwargs)
    x, y = sweep_data(T=15, n=6)
    betas = [0.0, 0.01, 0.1]
    common = (x, y, betas, 4, norm)
    sampled = perturbation_sweep(model, *common, torch.Generator().manual_seed(2))
    rows = perturbation_sweep(
        model, *common, torch.Generator().manual_seed(2), method="ascent", steps=5
    )
    assert rows[0]["errors"] == rows[0]["errors_sampled"] == sampled[0]["errors"]
    for row, plain in zip(rows[1:], sampled[1:], strict=True):
        assert row["errors_sampled"] == plain["errors"]
        assert all(a >= s for a, s in zip(row["errors"], row["errors_sampled"], strict=True))
        assert row["error"] > plain["error"]  # the gradient finds a worse direction
    # the perturbations where the ascent's errors were reached lie in the ball
    params = {k: v.detach() for k, v in model.raw_params().items()}
    masks = perturbed_masks(params, model.config)
    start = draw_perturbations(params, 0.1, 4, norm, torch.Generator().manual_seed(2), masks)
    errors, best = ascend(params, start, 0.1, norm, x, y, model.config, steps=5, masks=masks)
    np.testing.assert_allclose(errors.tolist(), rows[-1]["errors"], rtol=1e-10)
    if norm == "inf":
        assert all(float(v.abs().max()) <= 0.1 for v in best.values())
    else:
        total = torch.sqrt(sum(v.pow(2).reshape(4, -1).sum(1) for v in best.values()))
        assert (total <= 0.1 * (1 + 1e-12)).all()


def test_ascent_records_a_diverging_draw_as_inf():
    # as test_direct_negative_eigenvalue_is_recorded_as_divergence: w + delta < 0 diverges
    T, beta, repeats = 300, 1.0, 16
    cfg = StudentConfig(width=1, eig_init=(0.5, 0.5), dtype="float32")  # 1.5^300 overflows
    model = StudentRNN(cfg, generator=torch.Generator().manual_seed(0)).requires_grad_(False)
    x = torch.randn(4, T, 1, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(4, T, 1, dtype=F64)
    args = (model, x, y, [0.0, 0.1, beta], repeats, "inf", torch.Generator().manual_seed(7))
    rows = perturbation_sweep(*args, method="ascent", steps=10)
    row = rows[-1]
    assert row["error"] == math.inf and row["n_diverged"] >= row["n_eig_negative"] > 0
    assert all(math.isfinite(e) for e in rows[1]["errors"])
    assert all(
        not math.isfinite(a)
        for a, s in zip(row["errors"], row["errors_sampled"], strict=True)
        if not math.isfinite(s)
    )


def test_unknown_method_raises():
    model = student()
    x, y = sweep_data()
    with pytest.raises(ValueError, match="ascent"):
        perturbation_sweep(model, x, y, [0.1], 2, "inf", torch.Generator(), method="newton")
