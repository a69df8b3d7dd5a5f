"""The fused recurrence kernels (curse_memory.kernels) against the torch path."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from curse_memory import kernels  # noqa: E402
from curse_memory.model import StudentConfig, init_params, student_forward  # noqa: E402

FAMILIES = ("rnn", "ssm")
ACTIVATIONS = ("linear", "tanh", "hardtanh")
TOL = {"float64": 1e-12, "float32": 1e-5}


def student(family, activation, dtype, r, parameterisation="exp", seed=0, d=2, o=2, m=3):
    """Raw parameters (leaves) of r copies (r None: unbatched), moved off their init so
    that every gradient is nonzero, and a config with the time loop (no convolution)."""
    cfg = StudentConfig(
        width=m, family=family, activation=activation, dtype=dtype, d_in=d, d_out=o,
        parameterisation=parameterisation, fast_linear=False,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    ps = [init_params(cfg, gen) for _ in range(r or 1)]
    params = ps[0] if r is None else {k: torch.stack([p[k] for p in ps]) for k in ps[0]}
    noisy = {
        k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()
    }
    return {k: v.requires_grad_() for k, v in noisy.items()}, cfg


def outputs_and_grads(params, x, cfg, kernel, **kw):
    y = student_forward(params, x, cfg, kernel=kernel, **kw)
    grads = torch.autograd.grad((y**2).sum(), list(params.values()))
    return [y.detach(), *grads]


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("r", [None, 1, 3])
def test_fused_equals_torch(family, activation, dtype, r):
    params, cfg = student(family, activation, dtype, r)
    shape = (5, 7, 2) if r is None else (r, 5, 7, 2)  # a batch per copy
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=cfg.torch_dtype)
    fused, ref = (outputs_and_grads(params, x, cfg, k) for k in ("fused", "torch"))
    assert fused[0].shape == ref[0].shape
    for a, b in zip(fused, ref, strict=True):
        assert rel(a, b) <= TOL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("segment_bytes", [1, 720, 2**20])
def test_checkpoint_segments_and_one_pass_unit(family, activation, dtype, segment_bytes):
    """d = o = 1 (the backward's one-pass unit loop), with the backward's checkpoint
    segments of 1 step, 3 or 6 of 7 (a short last one), or all 7."""
    params, cfg = student(family, activation, dtype, 2, d=1, o=1)
    x = torch.randn(2, 5, 7, 1, generator=torch.Generator().manual_seed(2), dtype=cfg.torch_dtype)
    old, kernels.SEGMENT_BYTES = kernels.SEGMENT_BYTES, segment_bytes
    try:
        fused = outputs_and_grads(params, x, cfg, "fused")
    finally:
        kernels.SEGMENT_BYTES = old
    ref = outputs_and_grads(params, x, cfg, "torch")
    for a, b in zip(fused, ref, strict=True):
        assert rel(a, b) <= TOL[dtype]


@pytest.mark.parametrize("parameterisation", ["direct", "softplus", "best"])
def test_parameterisations_mixed_pack_and_shared_inputs(parameterisation):
    params, cfg = student("rnn", "tanh", "float64", 4, parameterisation=parameterisation)
    maps = [parameterisation, "exp", parameterisation, "softplus"]
    x = torch.randn(5, 7, 2, dtype=torch.float64)  # shared by the copies
    for raw in (False, True):
        kw = {"maps": maps, "raw": raw}
        fused, ref = (outputs_and_grads(params, x, cfg, k, **kw) for k in ("fused", "torch"))
        for a, b in zip(fused, ref, strict=True):
            assert rel(a, b) <= 1e-12


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_equals_separate(family):
    params, cfg = student(family, "tanh", "float64", 3)
    x = torch.randn(3, 5, 7, 2, dtype=torch.float64)
    with torch.no_grad():
        packed = student_forward(params, x, cfg, kernel="fused")
        for i in range(3):
            alone = student_forward({k: v[i] for k, v in params.items()}, x[i], cfg, kernel="fused")
            assert torch.equal(packed[i], alone)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("activation", ["tanh", "hardtanh"])
def test_gradcheck(family, activation):
    params, cfg = student(family, activation, "float64", 2, m=2, o=1, d=1)
    names = list(params)
    x = torch.randn(2, 3, 4, 1, dtype=torch.float64)

    def fn(*values):
        return student_forward(dict(zip(names, values, strict=True)), x, cfg, kernel="fused")

    assert torch.autograd.gradcheck(fn, tuple(params.values()), eps=1e-6, atol=1e-8)


def test_diverging_student_gives_inf_or_nan():
    """direct, raw: an eigenvalue below 0 (or above 2/dt) blows up; never finite, no crash."""
    for activation in ACTIVATIONS:
        params, cfg = student("rnn", activation, "float32", 2, parameterisation="direct")
        with torch.no_grad():
            params["w"][0] = -5.0  # copy 0 grows by 6x a step (linear) until inf
            params["w"][1] = 50.0  # copy 1: dt a = 50 > 2, an Euler oscillation
        x = torch.randn(2, 4, 200, 2)
        with torch.no_grad():
            y = student_forward(params, x, cfg, raw=True, kernel="fused")
            ref = student_forward(params, x, cfg, raw=True, kernel="torch")
        if activation == "linear":  # unbounded: both copies blow up
            assert not torch.isfinite(y[:, :, -1]).any()
        assert torch.equal(torch.isfinite(y), torch.isfinite(ref))
    nan = torch.full((1, 3, 5, 1), math.nan)
    params, cfg = student("ssm", "tanh", "float32", 1, d=1, o=1)
    with torch.no_grad():
        assert torch.isnan(student_forward(params, nan, cfg, kernel="fused")).all()


def test_tanh_accuracy():
    """float64 tanh within 1e-15 relative of numpy's (the memory tails reach 1e-16),
    float32 within 3e-7 absolute (as the torch path's sigmoid form); inf and NaN kept."""
    x = np.concatenate(
        [np.linspace(-25, 25, 100_001), np.geomspace(1e-300, 30, 3000), [np.inf, -np.inf]]
    )
    x = np.concatenate([x, -x, [0.0, np.nan]])
    u = torch.from_numpy(x)[:, None].contiguous()
    s = torch.empty_like(u)
    for dtype, tol in ((torch.float64, 1e-15), (torch.float32, 3e-7)):
        v, out = u.to(dtype).reshape(-1).contiguous(), s.to(dtype).reshape(-1).contiguous()
        kernels._activate(v.numpy(), out.numpy(), kernels.TANH, v.new_ones(()).numpy()[()])
        ref = np.tanh(v.double().numpy())
        got = out.double().numpy()
        assert np.isnan(got[-1])
        err = np.abs(got[:-1] - ref[:-1])
        if dtype == torch.float64:
            err = err / np.maximum(np.abs(ref[:-1]), 1e-300)
        assert err.max() <= tol, (dtype, err.max(), x[err.argmax()])


def test_a_jobs_kernel_choice_governs_calls_that_name_none(monkeypatch):
    """evaluate_perturbation and estimate_student_memory set train.kernel for the process:
    a call with kernel=None then runs that time loop (torch: no fused call)."""
    from unittest import mock

    from curse_memory.model import default_kernel, set_default_kernel

    cfg = StudentConfig(width=3, activation="tanh", dtype="float64")
    params = init_params(cfg, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 6, 1, dtype=torch.float64)
    try:
        set_default_kernel("torch")
        assert default_kernel() == "torch"
        with mock.patch.object(kernels, "FusedRecurrence", side_effect=AssertionError("fused")):
            torch_out = student_forward(params, x, cfg)
        set_default_kernel("fused")
        assert default_kernel() == "fused"
        torch.testing.assert_close(student_forward(params, x, cfg), torch_out, rtol=1e-12, atol=0)
        with pytest.raises(ValueError, match="kernel"):
            set_default_kernel("cuda-graphs")
    finally:
        set_default_kernel(None)
