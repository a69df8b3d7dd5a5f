"""Memory functions (method §4): linear targets, the linear student's closed form, decay fits."""

import numpy as np
import pytest
import torch

from curse_memory.memory import decay_fit, heaviside_inputs, memory_function, student_memories
from curse_memory.model import StudentConfig, StudentRNN
from curse_memory.targets import TargetSpec

AMPLITUDES = [1e1, 1e3, 1e5, 1e7]


def test_heaviside_inputs_are_constant_with_both_signs():
    x = heaviside_inputs(5, 2, [0.5, 3.0])
    assert x.shape == (8, 5, 2)
    assert (x == x[:, :1, :]).all()  # constant in time
    np.testing.assert_array_equal(np.abs(x[:, 0]).max(axis=-1), [0.5] * 4 + [3.0] * 4)
    np.testing.assert_array_equal(x[:, 0].sum(axis=0), [0.0, 0.0])  # +-e_i pairs


@pytest.mark.parametrize("name", ["exp", "pol"])
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_linear_target_memory_tends_to_abs_rho(name, dt):
    T = 100
    spec = TargetSpec(kernel=name, T=T, dt=dt)
    errors = []
    for amp in AMPLITUDES:
        t, mem = memory_function(spec.functional(), T, 1, dt, [amp])
        rho = spec.analytic_memory(t)
        np.testing.assert_allclose(t, dt * np.arange(1, T))
        # exact finite-amplitude value |rho(t)| amp / (amp + 1), up to FFT round-off
        np.testing.assert_allclose(mem, rho * amp / (amp + 1), rtol=1e-9, atol=1e-12)
        errors.append(np.abs(mem - rho).max())
    assert errors[-1] < 1e-6
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:], strict=False))
    # a set of amplitudes: the largest one dominates
    _, mem_all = memory_function(spec.functional(), T, 1, dt, [0.1, 1.0, *AMPLITUDES])
    assert np.abs(mem_all - spec.analytic_memory(t)).max() < 1e-6


def test_linear_target_memory_in_two_dims_uses_every_direction():
    T = 30
    spec = TargetSpec(kernel="exp", T=T, d=2)
    t, mem = memory_function(spec.functional(), T, 2, 1.0, [1e7])
    np.testing.assert_allclose(mem, spec.analytic_memory(t), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fast_linear", [True, False])
def test_linear_diagonal_student_memory_closed_form(fast_linear):
    T, m = 60, 5
    gen = torch.Generator().manual_seed(11)
    cfg = StudentConfig(
        width=m, parameterisation="exp", dtype="float64", dt=0.5, fast_linear=fast_linear
    )
    model = StudentRNN(cfg, generator=gen).requires_grad_(False)
    model.b.copy_(torch.randn(m, generator=gen, dtype=torch.float64))
    model.c0.fill_(0.7)
    assert model.b.abs().min() > 0

    amplitudes = [0.1, 1.0, 3.0, 100.0]
    fn = lambda x: model(torch.as_tensor(x)).numpy()
    t, mem = memory_function(fn, T, 1, cfg.dt, amplitudes)

    decay = 1.0 - cfg.dt * model.eigenvalues().numpy()
    expected = diagonal_linear_memory(model, decay, T, amplitudes)
    np.testing.assert_allclose(mem, expected, rtol=0, atol=1e-8)
    assert expected.max() > 1e-2  # the comparison is not between two zeros
    fit = decay_fit(t, mem)
    assert fit["decay"] == "exponential"


def test_decay_fit_labels_exponential_and_polynomial():
    t = np.arange(1.0, 100.0)
    fit = decay_fit(t, np.exp(-0.3 * t))
    assert fit["decay"] == "exponential"
    assert fit["rate_exp"] == pytest.approx(0.3, rel=0.05)
    assert fit["fit_exp"] > fit["fit_pol"]
    fit = decay_fit(t, (1 + t) ** -1.5)
    assert fit["decay"] == "polynomial"
    assert fit["rate_pol"] == pytest.approx(1.5, rel=0.05)
    assert fit["fit_pol"] > fit["fit_exp"]


def test_decay_fit_pol_target_is_polynomial_exp_target_is_exponential():
    T = 100
    for name, label in (("pol", "polynomial"), ("exp", "exponential")):
        spec = TargetSpec(kernel=name, T=T)
        t, mem = memory_function(spec.functional(), T, 1, 1.0, [1e3])
        assert decay_fit(t, mem)["decay"] == label


def test_decay_fit_ignores_roundoff_and_needs_three_points():
    t = np.arange(1.0, 60.0)
    mem = np.exp(-0.5 * t)
    mem[mem < 1e-12] = 1e-17  # a floor of round-off far below the tail
    fit = decay_fit(t, mem)
    assert fit["decay"] == "exponential"
    assert fit["rate_exp"] == pytest.approx(0.5, rel=1e-6)
    short = decay_fit(np.array([1.0, 2.0]), np.array([1.0, 0.5]))
    assert short["decay"] == "undetermined" and short["n_points"] == 2


def test_stacked_students_give_each_students_own_memory_function():
    """A pack's memory functions in one pass (mixed parameterisations, tanh) equal each
    student's alone."""
    from curse_memory.model import stack_students, student_forward

    models = [
        StudentRNN(
            StudentConfig(width=3, parameterisation=p, activation="tanh", dtype="float64"),
            generator=torch.Generator().manual_seed(i),
        )
        for i, p in enumerate(["direct", "softplus", "exp"])
    ]
    params, cfg, maps = stack_students(models)

    def stacked(x):
        with torch.no_grad():
            return student_forward(params, torch.as_tensor(x), cfg, maps=maps).numpy()

    t, together = memory_function(stacked, 200, 1, 1.0, [0.1, 1, 10])
    assert together.shape == (3, 199)
    for model, memory in zip(models, together, strict=True):

        def alone(x, model=model):
            with torch.no_grad():
                return model(torch.as_tensor(x)).numpy()

        np.testing.assert_allclose(memory, memory_function(alone, 200, 1, 1.0, [0.1, 1, 10])[1],
                                   rtol=1e-12, atol=1e-300)  # fmt: skip


def diagonal_linear_memory(model, decay, T: int, amplitudes) -> np.ndarray:
    """Closed-form Mhat of a diagonal linear student (rnn or ssm) with multipliers ``decay``
    = 1 - dt a: |c decay^(k+1) (U x + b)| / (|x| + 1), maximised over the Heaviside set."""
    U, b, c = model.U.numpy()[:, 0], model.b.numpy(), model.c.numpy()[0]
    k = np.arange(T - 1)[:, None]  # Mhat(t_k) uses y_{k+1} - y_k
    expected = np.zeros(T - 1)
    for x in amplitudes:
        for s in (x, -x):
            value = np.abs((c * decay ** (k + 1) * (U * s + b)).sum(axis=1)) / (x + 1)
            expected = np.maximum(expected, value)
    return expected


def test_student_memories_of_mixed_widths_equal_each_student_alone():
    """One stacked pass per width, results in the students' order: the same memory
    functions as each student estimated on its own."""
    specs = [(3, "tanh", "direct"), (5, "tanh", "softplus"), (3, "tanh", "softplus")]
    models = [
        StudentRNN(
            StudentConfig(width=m, activation=a, parameterisation=p),
            generator=torch.Generator().manual_seed(i),
        )
        for i, (m, a, p) in enumerate(specs)
    ]
    t, together = student_memories(models, 200, [1.0, 10.0])
    assert len(together) == 3 and t.shape == (199,)
    for model, memory in zip(models, together, strict=True):
        t_alone, (alone,) = student_memories([model], 200, [1.0, 10.0])
        np.testing.assert_allclose(memory, alone, rtol=1e-12, atol=1e-300)
        assert np.all(np.isfinite(memory)) and memory.max() > 0
    assert not np.allclose(together[0], together[2])  # students differ, rows not swapped
