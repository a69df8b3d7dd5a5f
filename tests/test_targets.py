"""Targets (method §1): FFT functionals against the direct sum, nonlinear targets, validation."""

import numpy as np
import pytest

from curse_memory import memory, targets
from curse_memory.targets import KERNELS, TARGET_KINDS, TargetSpec, kernel, linear_functional


def direct_sum(x: np.ndarray, rho: np.ndarray, dt: float) -> np.ndarray:
    """y_k = dt * sum_{j=0..k} sum_i rho_j x_{k-j,i}, the O(T^2) double sum."""
    n, T, _ = x.shape
    y = np.zeros((n, T, 1))
    for k in range(T):
        for j in range(k + 1):
            y[:, k, 0] += dt * rho[j] * x[:, k - j, :].sum(axis=-1)
    return y


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_fft_functional_equals_direct_sum(name, dt):
    rng = np.random.default_rng(1)
    T = 64
    x = rng.standard_normal((3, T, 2))
    rho = kernel(name, dt * np.arange(T))
    expected = direct_sum(x, rho, dt)
    y = linear_functional(x, rho, dt)
    assert y.shape == (3, T, 1)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-10)
    # the spec's functional is the same map
    spec = TargetSpec(kernel=name, T=T, dt=dt, d=2)
    np.testing.assert_allclose(spec.functional()(x), expected, rtol=0, atol=1e-10)


def test_fft_functional_is_causal():
    rng = np.random.default_rng(2)
    T = 40
    x = rng.standard_normal((2, T, 1))
    rho = kernel("pol", np.arange(T))
    x2 = x.copy()
    x2[:, 25:] = rng.standard_normal((2, T - 25, 1))  # change only the future of k = 24
    y, y2 = linear_functional(x, rho, 1.0), linear_functional(x2, rho, 1.0)
    np.testing.assert_allclose(y[:, :25], y2[:, :25], rtol=0, atol=1e-12)
    assert np.abs(y[:, 25:] - y2[:, 25:]).max() > 1e-3


def test_kernel_values_and_parameters():
    t = np.array([0.0, 1.0, 10.0])
    np.testing.assert_allclose(kernel("exp", t, a=0.5), np.exp(-0.5 * t))
    np.testing.assert_allclose(kernel("pol", t), (1 + 0.1 * t) ** -1.1)
    np.testing.assert_allclose(kernel("pol", t, s=1.0, p=2.0), (1 + t) ** -2.0)
    np.testing.assert_array_equal(kernel("shift", np.array([9.0, 10.0, 11.0])), [0, 1, 0])


def test_nonlinear_readout_tanh_applies_tanh_to_linear_functional():
    rng = np.random.default_rng(3)
    T = 30
    x = 2.0 * rng.standard_normal((4, T, 1))
    spec = TargetSpec(kind="nonlinear_readout", kernel="pol", readout="tanh", T=T)
    z = linear_functional(x, kernel("pol", np.arange(T)), 1.0)
    y = spec.functional()(x)
    np.testing.assert_allclose(y, np.tanh(z), rtol=0, atol=1e-14)
    assert np.abs(y - z).max() > 0.1  # tanh really bends the output (|z| is not small)
    quad = TargetSpec(kind="nonlinear_readout", kernel="exp", readout="quadratic", T=T)
    z = linear_functional(x, kernel("exp", np.arange(T)), 1.0)
    np.testing.assert_allclose(quad.functional()(x), z + 0.5 * z**2, rtol=0, atol=1e-12)
    assert quad.analytic_memory(np.arange(3.0)) is None


@pytest.mark.slow
def test_teacher_rnn_is_deterministic_and_has_exponential_memory():
    T = 80
    spec = TargetSpec(kind="teacher_rnn", teacher_width=8, T=T)
    x = np.random.default_rng(4).standard_normal((5, T, 1))
    y1 = spec.functional()(x)
    y2 = TargetSpec(kind="teacher_rnn", teacher_width=8, T=T).functional()(x)
    np.testing.assert_array_equal(y1, y2)
    assert y1.shape == (5, T, 1) and np.isfinite(y1).all()
    other = TargetSpec(kind="teacher_rnn", teacher_width=8, T=T, teacher_seed=1)
    assert np.abs(other.functional()(x) - y1).max() > 1e-3  # the seed matters
    t, mem = memory.memory_function(spec.functional(), T, 1, 1.0, [0.1, 1.0, 10.0])
    fit = memory.decay_fit(t, mem)
    assert fit["decay"] == "exponential", fit
    assert fit["rate_exp"] > 0.05
    assert spec.analytic_memory(t) is None


def test_make_target_splits_and_seed():
    spec = TargetSpec(kernel="pol", T=20)
    data = targets.make_target(spec, 10, 5, 6, seed=7)
    assert data["x_train"].shape == (10, 20, 1) and data["y_test"].shape == (6, 20, 1)
    again = targets.make_target(spec, 10, 5, 6, seed=7)
    for k in ("x_train", "y_val", "x_test"):
        assert (data[k] == again[k]).all()
    y = spec.functional()(data["x_val"].numpy())
    np.testing.assert_allclose(data["y_val"].numpy(), y, rtol=0, atol=1e-14)
    assert data["spec"]["kernel"] == "pol" and data["seed"] == 7


@pytest.mark.parametrize(
    ("make", "allowed"),
    [
        (lambda: kernel("gauss", np.zeros(2)), KERNELS),
        (lambda: TargetSpec(kernel="gauss"), KERNELS),
        (lambda: TargetSpec(kind="transformer"), TARGET_KINDS),
        (lambda: TargetSpec(kernel="pol", kernel_params={"q": 1.0}), ("s", "p")),
        (lambda: TargetSpec(kind="nonlinear_readout", readout="cubic"), targets.READOUTS),
        (lambda: TargetSpec(input="pink"), targets.INPUT_PROCESSES),
    ],
)
def test_unknown_target_names_raise_with_allowed_list(make, allowed):
    with pytest.raises(ValueError) as info:
        make()
    for name in allowed:
        assert name in str(info.value)


# ---------------------------------------------------------------------------- transformer
def transformer(T=40, **kw):
    return TargetSpec(kind="teacher_transformer", T=T, **kw)


@pytest.mark.parametrize("positional", targets.POSITIONAL)
@pytest.mark.parametrize("k", [0, 13, 39])
def test_teacher_transformer_is_causal_exactly(positional, k):
    """Perturbing x_k leaves y_0..y_{k-1} bitwise unchanged and moves y_k."""
    fn = transformer(transformer_positional=positional).functional()
    x = np.random.default_rng(5).standard_normal((3, 40, 1))
    moved = x.copy()
    moved[:, k] += 3.0
    y, y_moved = fn(x), fn(moved)
    np.testing.assert_array_equal(y[:, :k], y_moved[:, :k])
    assert np.abs(y[:, k] - y_moved[:, k]).min() > 1e-6


def test_teacher_transformer_shape_seed_and_scale():
    x = np.random.default_rng(6).standard_normal((256, 40, 2))
    spec = transformer(d=2, transformer_width=12, transformer_heads=3, transformer_ff=20)
    y = spec.functional()(x)
    assert y.shape == (256, 40, 1) and y.dtype == np.float64 and np.isfinite(y).all()
    again = transformer(d=2, transformer_width=12, transformer_heads=3, transformer_ff=20)
    np.testing.assert_array_equal(again.functional()(x), y)  # the seed fixes the weights
    other = transformer(d=2, transformer_width=12, transformer_heads=3, transformer_ff=20,
                        teacher_seed=1)  # fmt: skip
    assert np.abs(other.functional()(x) - y).max() > 1e-2
    assert 0.7 < y.std() < 1.3  # scaled to unit variance on white inputs of its horizon
    assert spec.analytic_memory(np.arange(3.0)) is None


def test_teacher_transformer_blocks_of_queries_do_not_change_the_output():
    """The attention in blocks of a few queries (a long horizon's bounded memory) equals one
    block over all positions."""
    import torch

    x = torch.randn(2, 57, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    outputs = []
    for max_elements in (2 * 2 * 57 * 5, 2**30):  # blocks of 5 queries; one block
        gen = torch.Generator().manual_seed(3)
        model = targets.CausalTransformer(1, 8, 2, 16, "sinusoidal", gen, max_elements)
        outputs.append(model(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-13, atol=1e-13)


def test_teacher_transformer_memory_function_without_positions_is_zero():
    """Without positional encoding a constant input gives a constant output (every past
    position is alike): the Heaviside memory function is zero to round-off."""
    spec = transformer(transformer_positional="none")
    t, mem = memory.memory_function(spec.functional(), 300, 1, 1.0, [0.1, 1.0, 10.0])
    assert t.shape == (299,) and mem.max() < 1e-12
    spec = transformer()  # the sinusoidal encoding moves the output at every step
    t, mem = memory.memory_function(spec.functional(), 300, 1, 1.0, [0.1, 1.0, 10.0])
    assert mem.min() > 1e-4


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"transformer_width": 10, "transformer_heads": 3}, "divide"),
        ({"transformer_positional": "rotary"}, "sinusoidal"),
        ({"transformer_ff": 0}, ">= 1"),
    ],
)
def test_teacher_transformer_spec_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        transformer(**kw)


def test_teacher_transformer_config_path(tmp_path):
    """The schema accepts a teacher_transformer target (and fills its defaults), the config
    checks refuse heads that do not divide the width and an infeasible memory horizon, and
    the filter config's target synthesizes."""
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from curse_memory.checks import TRANSFORMER_MAX_HORIZON, transformer_problem

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config/config.yaml").read_text())  # the default run,
    config["targets"] = yaml.safe_load((root / "config/filter.yaml").read_text())["targets"]
    config["targets"]["bare"] = {"kind": "teacher_transformer"}  # with the filter's targets
    validate(config, schema=str(root / "workflow/schemas/config.schema.yaml"))
    bare = config["targets"]["bare"]
    assert bare["transformer_width"] == 16 and bare["transformer_positional"] == "sinusoidal"
    spec = config["targets"]["transformer"]
    assert transformer_problem("transformer", spec, config["memory"]["horizon"]) is None
    bad = spec | {"transformer_heads": 5}
    assert "targets.x.transformer_heads" in transformer_problem("x", bad, 100)
    assert "memory.horizon" in transformer_problem("x", spec, TRANSFORMER_MAX_HORIZON + 1)
    assert transformer_problem("x", {"kind": "linear"}, 10**9) is None

    spec = TargetSpec(**(spec | {"T": 30}))
    data = targets.make_target(spec, 8, 4, 4, seed=2)
    assert data["x_train"].shape == (8, 30, 1) and data["y_test"].shape == (4, 30, 1)
    assert data["spec"]["kind"] == "teacher_transformer"
    assert TargetSpec(**data["spec"]) == spec  # rebuilt from the stored spec
