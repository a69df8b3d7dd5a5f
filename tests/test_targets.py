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
