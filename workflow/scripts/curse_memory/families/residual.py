"""The residual families of method §2 and §6, rnn and ssm: one state recurrence with the
structures (A) x parameterisations (f) x activations (sigma) of the grid.

    rnn   h_{k+1} = h_k + dt * sigma(U x_k + b - A h_k),   yhat_k = c h_{k+1} + c_0
    ssm   h_{k+1} = h_k + dt * (U x_k + b - A h_k),        yhat_k = c sigma(h_{k+1}) + c_0

with h_0 = 0 and A = diag(f(w)), P diag(f(w)) P^T or a free matrix. Raw parameters w
[, P] or A, then U, b, c, c0. The diagonal time loop runs in the fused kernels
(``kernels.FusedRecurrence``) or, for packed rnn students, ``DiagonalRecurrence`` (its
hand-written backward); the linear students as an exact convolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ._lazy import F, torch
from .base import Family, check_choice

if TYPE_CHECKING:
    from torch import Tensor

    from ..model import StudentConfig

STRUCTURES = ("diagonal", "orthogonal", "dense")


# ---------------------------------------------------------------------------- maps f
class Parameterisation(NamedTuple):
    """Eigenvalue map a = f(w) of one parameterisation (eps is used by ``best`` only)."""

    train: Callable[[Tensor, float], Tensor]  # f while training
    evaluate: Callable[[Tensor, float], Tensor]  # f at evaluation and under perturbation
    inverse: Callable[[Tensor, float], Tensor]  # w with f(w) = a, for initialisation


def _relu(w: Tensor, eps: float) -> Tensor:
    return torch.relu(w)


def _identity(w: Tensor, eps: float) -> Tensor:
    return w


def _exp(w: Tensor, eps: float) -> Tensor:
    return torch.exp(w)


def _log(a: Tensor, eps: float) -> Tensor:
    return torch.log(a)


def _softplus(w: Tensor, eps: float) -> Tensor:
    return F.softplus(w)


def _softplus_inverse(a: Tensor, eps: float) -> Tensor:
    return a + torch.log(-torch.expm1(-a))


def _best(w: Tensor, eps: float) -> Tensor:
    return 1.0 / (w * w + eps)


def _best_inverse(a: Tensor, eps: float) -> Tensor:
    return torch.sqrt(1.0 / a - eps)


PARAMETERISATIONS: dict[str, Parameterisation] = {
    # vanilla: relu keeps training stable; evaluation uses w itself (after one projection),
    # so a perturbation can push an eigenvalue below 0
    "direct": Parameterisation(_relu, _identity, _identity),
    "exp": Parameterisation(_exp, _exp, _log),
    "softplus": Parameterisation(_softplus, _softplus, _softplus_inverse),
    # StableSSM's "best": a in (0, 1/eps], so 1/eps < 2/dt keeps Euler stable
    "best": Parameterisation(_best, _best, _best_inverse),
}


def sigmoid_tanh(v: Tensor) -> bool:
    """Whether tanh is computed as 2 sigmoid(2v) - 1: in float32 on the CPU. There
    torch.tanh costs about 3x a sigmoid (96 against 30 us on a 12 x 128 x 14 block), so
    a packed tanh step gets 1.0-1.4x faster (``make bench``, section tanh), and the form
    stays within float32 rounding of tanh (absolute error at most 2.5 ulp of 1, 3e-7;
    tests). float64 keeps torch.tanh, whose relative precision near 0 the memory
    functions' tails need."""
    return v.dtype == torch.float32 and v.device.type == "cpu"


def _tanh(v: Tensor) -> Tensor:
    if sigmoid_tanh(v):
        return torch.sigmoid(2.0 * v) * 2.0 - 1.0
    return torch.tanh(v)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda v: v,
    "tanh": _tanh,
    "hardtanh": lambda v: F.hardtanh(v),
}


KERNELS = ("fused", "torch")
_CHOSEN: list[str] = []  # set_default_kernel's choice for this process


def set_default_kernel(kernel: str | None) -> None:
    """The kernel of every later call that names none (a job's ``train.kernel``, so that its
    perturbation and memory passes run the time loop the config chose); None: automatic."""
    if kernel is not None:
        check_choice("kernel", kernel, KERNELS)
    _CHOSEN[:] = [] if kernel is None else [kernel]


def default_kernel() -> str:
    """The kernel ``set_default_kernel`` chose; otherwise ``fused`` where numba is
    installed, else ``torch``."""
    if _CHOSEN:
        return "torch" if _CHOSEN[0] == "fused" and not _numba() else _CHOSEN[0]
    return "fused" if _numba() else "torch"


def _numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _fused(kernel: str | None) -> bool:
    """Whether the diagonal time loop runs in the fused kernels."""
    kernel = default_kernel() if kernel is None else kernel
    check_choice("kernel", kernel, KERNELS)
    return kernel == "fused"


class Residual(Family):
    """rnn and ssm (``ssm``: sigma acts on the readout, the state recurrence is linear)."""

    axes = True
    batch_key = "U"
    ssm = False

    def init(self, cfg, generator=None) -> dict:
        """w [, P] or A, then U, b, c, c0 (method §2 initialisation), in float64.

        ``init="uniform"``: eigenvalues a_i ~ U[eig_init], w = f^{-1}(a).
        ``init="reference"``: the reference code's raw w ~ N(0, 1) (direct: about half the
        units get a = relu(w) = 0; softplus: a may exceed 2/dt); the dense structure has no
        w and keeps the uniform draw."""
        m, d, o = cfg.width, cfg.d_in, cfg.d_out
        f64 = torch.float64
        lo, hi = cfg.eig_init
        a = lo + (hi - lo) * torch.rand(m, generator=generator, dtype=f64)
        q, r = torch.linalg.qr(torch.randn(m, m, generator=generator, dtype=f64))
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed orthogonal matrix
        params: dict[str, Tensor] = {}
        if cfg.structure == "dense":
            params["A"] = (q * a) @ q.T
        else:
            if cfg.init == "reference":
                params["w"] = torch.randn(m, generator=generator, dtype=f64)
            else:
                params["w"] = PARAMETERISATIONS[cfg.parameterisation].inverse(a, cfg.eps)
            if cfg.structure == "orthogonal":  # P = QR of a Gaussian under either init
                params["P"] = q
        params["U"] = torch.randn(m, d, generator=generator, dtype=f64) / math.sqrt(d)
        params["b"] = torch.zeros(m, dtype=f64)
        params["c"] = torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(m)
        params["c0"] = torch.zeros(o, dtype=f64)
        return params

    def convolution(self, cfg) -> bool:
        return cfg.activation == "linear" and cfg.fast_linear

    def recurrence(self, params, cfg, raw=False, maps=None):
        return recurrence(params, cfg, raw, maps)

    def eigenvalues(self, params, cfg, raw=True, maps=None):
        rec = recurrence(params, cfg, raw, maps)
        if cfg.structure == "diagonal":
            return rec
        if cfg.structure == "orthogonal":  # P diag P^T is symmetric
            return torch.linalg.eigvalsh(rec)
        return torch.linalg.eigvals(rec).real

    def project_(self, params, cfg) -> None:
        """direct: w <- relu(w), so that evaluation with w itself equals training's f."""
        if cfg.parameterisation == "direct" and cfg.structure != "dense":
            params["w"].clamp_(min=0)

    def forward(self, params, x, cfg, raw=False, maps=None, kernel=None):
        rec = recurrence(params, cfg, raw, maps)
        if cfg.activation == "linear" and cfg.fast_linear:  # the ssm then equals the rnn
            return _linear_convolution(params, rec, x, cfg)
        if cfg.structure == "diagonal" and x.device.type == "cpu" and _fused(kernel):
            return _fused_forward(params, rec, x, cfg, self.ssm)
        if not self.ssm and cfg.structure == "diagonal" and params["U"].dim() == 3:
            from ._diagonal import DiagonalRecurrence

            args = (params["U"], params["b"], rec, params["c"])
            keep = torch.is_grad_enabled() and any(v.requires_grad for v in args)
            y = DiagonalRecurrence.apply(x, *args, cfg.dt, cfg.activation, keep)  # (r, b, t, o)
            return y + params["c0"][:, None, None, :]
        act = ACTIVATIONS[cfg.activation]
        if self.ssm:  # linear state recurrence, sigma before the readout
            states = _hidden_states(params, rec, x, cfg, ACTIVATIONS["linear"])
            return _readout(params, act(states))
        states = _hidden_states(params, rec, x, cfg, act)  # (b, t, m) or time-major (t, r, b, m)
        return _readout(params, states)

    def impulse_response(self, params, rec, cfg, T: int):
        """Kernels Kx, Kb of the linear student (see ``impulse_response``)."""
        if self.ssm and cfg.activation != "linear":
            raise ValueError(f"no impulse response for family {cfg.family!r} ({cfg.activation})")
        return impulse_response(params, rec, cfg, T)


def recurrence(
    params: Mapping[str, Tensor],
    cfg: StudentConfig,
    raw: bool = False,
    maps: Sequence[str] | None = None,
) -> Tensor:
    """A of the rnn and ssm, or its diagonal (..., m); the arguments as
    ``model.recurrence``, which asks the family for it."""
    if cfg.structure == "dense":
        return params["A"]  # (..., m, m)
    w = params["w"]
    if maps is None or len(set(maps)) == 1:
        p = PARAMETERISATIONS[maps[0] if maps else cfg.parameterisation]
        a = (p.evaluate if raw else p.train)(w, cfg.eps)  # (..., m)
    else:  # one small op per copy, once per forward
        fs = [PARAMETERISATIONS[name] for name in maps]
        ws = w.unbind(0)
        a = torch.stack(
            [(f.evaluate if raw else f.train)(v, cfg.eps) for f, v in zip(fs, ws, strict=True)]
        )
    if cfg.structure == "diagonal":
        return a
    P = params["P"]  # (..., m, m)
    return (P * a.unsqueeze(-2)) @ P.transpose(-1, -2)


def _fused_forward(
    params: Mapping[str, Tensor], rec: Tensor, x: Tensor, cfg: StudentConfig, ssm: bool
):
    """The diagonal rnn or ssm by ``kernels.FusedRecurrence`` (one compiled call forward,
    one backward); unbatched parameters run as r = 1. Same maths as the torch path."""
    from ..kernels import FusedRecurrence

    U, bias, c, c0 = params["U"], params["b"], params["c"], params["c0"]
    single = U.dim() == 2
    if single:
        U, bias, rec, c, c0 = U[None], bias[None], rec[None], c[None], c0[None]
    args = (U, bias, rec, c)
    keep = torch.is_grad_enabled() and any(v.requires_grad for v in args)
    y = FusedRecurrence.apply(x, *args, cfg.dt, cfg.activation, ssm, keep)  # (r, b, t, o)
    y = y + c0[:, None, None, :]
    return y[0] if single else y


def _readout(params: Mapping[str, Tensor], states: Tensor) -> Tensor:
    c, c0 = params["c"], params["c0"]
    if c.dim() == 3:  # (r, o, m), states (t, r, b, m): (t, r, b, o), no copy of the states
        y = states @ c.transpose(-1, -2).unsqueeze(0)
        return y.permute(1, 2, 0, 3) + c0[:, None, None, :]  # (r, b, t, o)
    return F.linear(states, c, c0)


def _hidden_states(
    params: Mapping[str, Tensor],
    rec: Tensor,
    x: Tensor,
    cfg: StudentConfig,
    act: Callable[[Tensor], Tensor],
) -> Tensor:
    """h_1..h_T by the Euler recurrence h_{k+1} = h_k + dt act(U x_k + b - A h_k), with
    U x + b formed for all steps.

    Returns (b, t, m) for one student, time-major (t, r, b, m) for r copies.
    """
    batched = params["U"].dim() == 3
    if batched:
        z = _input_drive(params["U"], params["b"], x)[1]  # (t, r, b, m)
    else:
        z = F.linear(x.transpose(0, 1), params["U"], params["b"])  # (t, b, m)
    dt = cfg.dt
    zs = z.unbind(0)
    h = dt * act(zs[0])  # h_1, since h_0 = 0
    hs = [h]
    if cfg.structure == "diagonal":
        a = rec.unsqueeze(-2) if batched else rec  # (r, 1, m) or (m,)
        for zk in zs[1:]:
            h = torch.add(h, act(torch.addcmul(zk, h, a, value=-1.0)), alpha=dt)
            hs.append(h)
    else:
        At = rec.transpose(-1, -2)
        matmul_add = torch.baddbmm if batched else torch.addmm
        for zk in zs[1:]:
            h = torch.add(h, act(matmul_add(zk, h, At, alpha=-1.0)), alpha=dt)
            hs.append(h)
    if batched:  # time-major: each step's (r, b, m) is one contiguous block
        return torch.stack(hs)  # (t, r, b, m)
    return torch.stack(hs, dim=-2)  # (b, t, m)


def _input_drive(U: Tensor, bias: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """The inputs and U x_k + b of r copies for every step, time-major and contiguous:
    xt (t, r, b, d) or (t, 1, b, d), and z (t, r, b, m).

    x is (r, b, t, d), one batch per copy, or (b, t, d), shared; U (r, m, d), bias (r, m).
    Built by d broadcast multiply-adds: a batched matmul here would be t x r tiny
    products, and a layout that follows x's (batch-major) strides would make every
    per-step slice strided.
    """
    if x.dim() == 4:
        xt = x.permute(2, 0, 1, 3).contiguous()  # (t, r, b, d)
    else:
        xt = x.transpose(0, 1).contiguous().unsqueeze(1)  # (t, 1, b, d)
    z = bias[None, :, None, :]
    for j in range(x.shape[-1]):
        z = torch.addcmul(z, xt[..., j : j + 1], U[None, :, None, :, j])
    return xt, z.contiguous()


def _feature_major_inputs(x: Tensor) -> Tensor:
    """Inputs laid out for ``DiagonalRecurrence``, time-major and feature-major: (t, r, d, b)
    from x (r, b, t, d), or (t, 1, d, b) from x (b, t, d), contiguous."""
    if x.dim() == 4:
        return x.permute(2, 0, 3, 1).contiguous()
    return x.permute(1, 2, 0).contiguous().unsqueeze(1)


def impulse_response(
    params: Mapping[str, Tensor], rec: Tensor, cfg: StudentConfig, T: int
) -> tuple[Tensor, Tensor]:
    """Kernels of the linear student: yhat_k = c_0 + sum_{j<=k} (Kb_j + Kx_j x_{k-j}).

    With M = I - dt A, Kx_j = dt c M^j U and Kb_j = dt c M^j b.
    Returns Kx ([r,] T, o, d) and Kb ([r,] T, o). rnn, and ssm with linear activation.
    """
    U, bias, c = params["U"], params["b"], params["c"]
    B = torch.cat([U, bias.unsqueeze(-1)], dim=-1)  # ([r,] m, d+1)
    if cfg.structure == "diagonal":
        decay = 1.0 - cfg.dt * rec  # ([r,] m)
        steps = decay.unsqueeze(-2).expand(*decay.shape[:-1], T - 1, decay.shape[-1])
        powers = torch.cumprod(steps, dim=-2)  # decay^1 .. decay^(T-1)
        powers = torch.cat([torch.ones_like(powers[..., :1, :]), powers], dim=-2)
        G = powers.unsqueeze(-1) * B.unsqueeze(-3)  # ([r,] T, m, d+1)
    else:
        eye = torch.eye(rec.shape[-1], dtype=rec.dtype, device=rec.device)
        Mn = eye - cfg.dt * rec  # M^n, squared each round
        G = B.unsqueeze(-3)  # G_0
        while G.shape[-3] < T:  # doubling: [G_0..G_{n-1}] -> [.., M^n G_0 .. M^n G_{n-1}]
            G = torch.cat([G, Mn.unsqueeze(-3) @ G], dim=-3)
            if G.shape[-3] < T:
                Mn = Mn @ Mn
        G = G[..., :T, :, :]
    K = cfg.dt * (c.unsqueeze(-3) @ G)  # ([r,] T, o, d+1)
    return K[..., :-1], K[..., -1]


def _linear_convolution(
    params: Mapping[str, Tensor], rec: Tensor, x: Tensor, cfg: StudentConfig
) -> Tensor:
    """The linear student as an exact causal convolution: one (Toeplitz) matrix product.

    The kernel is laid out as a matrix B, so that the product with the inputs has the
    output's layout (b, t o): no transposes. With the inputs in reversed time (s' = T-1-s),
    B[(s', d), (t, o)] = P_{s'+t}, P the kernel Kx after T-1 zero lags (the non-causal
    entries): T overlapping windows of P (``unfold``, a view whose backward sums the
    windows; 1.4x faster forward + backward than gathering B from a lag index, whose
    backward is a scatter-add), copied once into the product's layout.
    """
    T, d = x.shape[-2], x.shape[-1]
    Kx, Kb = impulse_response(params, rec, cfg, T)  # ([r,] t, o, d), ([r,] t, o)
    o = Kx.shape[-2]
    padded = torch.cat([torch.zeros_like(Kx[..., : T - 1, :, :]), Kx], dim=-3)  # P
    B = padded.unfold(-3, T, 1).movedim(-3, -1)  # ([r,] s', d, t, o): P_{s'+t}
    B = B.reshape(*B.shape[:-4], T * d, T * o)  # ([r,] (s' d), (t o))
    y = torch.matmul(x.flip(-2).reshape(*x.shape[:-2], T * d), B)  # ([r,] b, (t o))
    y = y.unflatten(-1, (T, o))
    bias = torch.cumsum(Kb, dim=-2)  # ([r,] t, o)
    c0 = params["c0"]
    if c0.dim() == 2:
        return y + (bias + c0[:, None, :]).unsqueeze(1)
    return y + bias + c0
