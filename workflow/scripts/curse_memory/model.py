"""Students: one class for every model family of method §2 and §6.

    rnn   h_{k+1} = h_k + dt * sigma(U x_k + b - A h_k),   yhat_k = c h_{k+1} + c_0
    ssm   h_{k+1} = h_k + dt * (U x_k + b - A h_k),        yhat_k = c sigma(h_{k+1}) + c_0
    lru   h_{k+1} = lambda * h_k + gamma * (B x_k),         yhat_k = Re(C h_{k+1}) + D x_k
          lambda_j = exp(-exp(nu_j) + i exp(theta_j)),  gamma_j = sqrt(1 - |lambda_j|^2)
    lstm, gru   torch.nn.LSTM / GRU cells (one layer),     yhat_k = c h_{k+1} + c_0

with h_0 = 0. rnn and ssm share the structures (A) x parameterisations (f) x activations
(sigma); for lru, lstm and gru those three axes do not apply and read "none".

Each forward map is written once, as a function of a dict of *raw* parameters
(``student_forward``); every tensor may carry a leading dim r of perturbed copies, so a
perturbation sweep evaluates all its draws in one pass. ``StudentRNN`` is the trainable
``nn.Module`` around it, whatever the family.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import AXES_APPLY, FAMILIES, best_reach_problem, eig_init_problem

# where AXES_APPLY is False, the three fields of a StudentConfig read NO_AXIS
AXES = ("structure", "parameterisation", "activation")
NO_AXIS = "none"
GATES = {"lstm": 4, "gru": 3}  # gate blocks of the gated cells (torch's row layout)
STRUCTURES = ("diagonal", "orthogonal", "dense")
INITS = ("uniform", "reference")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_choice(key: str, value, allowed) -> None:
    """Raise a ValueError naming ``key`` and the allowed values when ``value`` is not one."""
    if value not in allowed:
        raise ValueError(f"unknown {key} {value!r}; allowed: {', '.join(map(str, allowed))}")


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
    "hardtanh": F.hardtanh,
}


# ---------------------------------------------------------------------------- config
@dataclass
class StudentConfig:
    """Everything needed to rebuild a student (stored in its checkpoint).

    For lru, lstm and gru, structure, parameterisation and activation do not apply: they
    read "none", their defaults are normalised to it, and any other value is a ValueError
    (a value equal to the default, e.g. structure="diagonal", cannot be told apart from it
    and is normalised too). ``family`` is the last field, so checkpoints written before it
    load as rnn.
    """

    width: int  # m, hidden units
    structure: str = "diagonal"  # diagonal | orthogonal (P diag(f(w)) P^T) | dense (free A)
    parameterisation: str = "direct"  # direct | exp | softplus | best (ignored for dense)
    activation: str = "linear"  # linear | tanh | hardtanh
    dt: float = 1.0  # Euler step
    eps: float = 0.6  # `best`: a = 1/(w^2+eps) <= 1/eps, keep 1/eps < 2/dt
    eig_init: tuple[float, float] = (0.2, 1.0)  # initial eigenvalues a_i ~ U[lo, hi] (lru too)
    d_in: int = 1  # d
    d_out: int = 1  # o
    dtype: str = "float32"  # float32 | float64
    fast_linear: bool = True  # rnn/ssm, linear activation: exact convolution, not the loop
    init: str = "uniform"  # rnn/ssm: uniform: a_i ~ U[eig_init] | reference: raw w ~ N(0, 1)
    family: str = "rnn"  # rnn | ssm | lru | lstm | gru (method §6)

    def __post_init__(self):
        check_choice("family", self.family, FAMILIES)
        if AXES_APPLY[self.family]:
            check_choice("structure", self.structure, STRUCTURES)
            check_choice("parameterisation", self.parameterisation, PARAMETERISATIONS)
            check_choice("activation", self.activation, ACTIVATIONS)
        else:  # the defaults become "none"; any other value is an error
            defaults = {f.name: f.default for f in fields(self)}
            for key in AXES:
                value = getattr(self, key)
                if value == defaults[key]:
                    setattr(self, key, NO_AXIS)
                elif value != NO_AXIS:
                    raise ValueError(
                        f"{key} {value!r} does not apply to family {self.family!r}; "
                        f"allowed: {NO_AXIS}"
                    )
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("init", self.init, INITS)
        self.eig_init = tuple(float(v) for v in self.eig_init)
        lo, hi = self.eig_init
        if int(self.width) != self.width or self.width < 1:
            raise ValueError(f"width must be a positive integer, got {self.width!r}")
        if min(self.d_in, self.d_out) < 1:
            raise ValueError("d_in and d_out must be positive")
        if not self.dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")
        problem = eig_init_problem(lo, hi, self.dt)
        if problem:
            raise ValueError(f"eig_init: {problem}")
        if self.parameterisation == "best" and best_reach_problem(hi, self.eps):
            raise ValueError(f"eps: {best_reach_problem(hi, self.eps)}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def has_axes(self) -> bool:
        """Whether structure, parameterisation and activation apply (rnn, ssm)."""
        return AXES_APPLY[self.family]

    @property
    def convolution(self) -> bool:
        """Whether the forward pass is a convolution (no time loop over hidden states)."""
        if self.family == "lru":
            return True
        return self.has_axes and self.activation == "linear" and self.fast_linear


# ---------------------------------------------------------------------------- params
def init_params(cfg: StudentConfig, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Raw parameters of a fresh student (method §2 initialisation), in ``cfg.dtype``.

    rnn, ssm: ``init="uniform"``: eigenvalues a_i ~ U[eig_init], w = f^{-1}(a).
    ``init="reference"``: the reference code's raw w ~ N(0, 1) (direct: about half the units
    get a = relu(w) = 0; softplus: a may exceed 2/dt); the dense structure has no w and keeps
    the uniform draw. lru: see ``_init_lru``; lstm, gru: see ``_init_gated`` (``init`` does
    not apply to them). Every draw is made in float64, then cast.
    """
    if cfg.family == "lru":
        params = _init_lru(cfg, generator)
    elif cfg.family in GATES:
        params = _init_gated(cfg, generator)
    else:
        params = _init_rnn(cfg, generator)
    return {k: v.to(cfg.torch_dtype) for k, v in params.items()}


def _init_rnn(cfg: StudentConfig, generator: torch.Generator | None) -> dict[str, Tensor]:
    """rnn and ssm: w [, P] or A, then U, b, c, c0."""
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


def _init_lru(cfg: StudentConfig, generator: torch.Generator | None) -> dict[str, Tensor]:
    """lru (Orvieto et al. 2023), decays as the rnn's eigenvalues: a_j ~ U[eig_init] and
    exp(nu_j) = dt a_j, so |lambda_j| = exp(-dt a_j); phases exp(theta_j) ~ U[0.001, pi/10].
    B_re, B_im ~ N(0, 1/(2d)) (complex B of variance 1/d per entry, as the LRU paper);
    C_re, C_im ~ N(0, 1/(2m)) (complex C of variance 1/m per entry, the scale of the rnn's
    c ~ N(0, 1/m): with gamma's normalisation a state has E|h_j|^2 ~ 1 on white unit input,
    so Re(C h) starts at variance about 1/2); D ~ N(0, 1/d).
    """
    m, d, o = cfg.width, cfg.d_in, cfg.d_out
    f64 = torch.float64
    lo, hi = cfg.eig_init
    a = lo + (hi - lo) * torch.rand(m, generator=generator, dtype=f64)
    phase = 0.001 + (math.pi / 10 - 0.001) * torch.rand(m, generator=generator, dtype=f64)
    params = {"nu": torch.log(cfg.dt * a), "theta": torch.log(phase)}
    for name in ("B_re", "B_im"):
        params[name] = torch.randn(m, d, generator=generator, dtype=f64) / math.sqrt(2 * d)
    for name in ("C_re", "C_im"):
        params[name] = torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(2 * m)
    params["D"] = torch.randn(o, d, generator=generator, dtype=f64) / math.sqrt(d)
    return params


def _init_gated(cfg: StudentConfig, generator: torch.Generator | None) -> dict[str, Tensor]:
    """lstm, gru: torch.nn.LSTM / GRU's weights (input d, hidden m, gate rows in torch's
    order) drawn U(-1/sqrt(m), 1/sqrt(m)) as torch does, but from ``generator``; then the
    readout c ~ N(0, 1/m) and c0 = 0."""
    m, d, o = cfg.width, cfg.d_in, cfg.d_out
    f64, rows, bound = torch.float64, GATES[cfg.family] * cfg.width, 1 / math.sqrt(cfg.width)
    params = {}
    shapes = {"weight_ih": (rows, d), "weight_hh": (rows, m), "bias_ih": rows, "bias_hh": rows}
    for name, shape in shapes.items():
        params[name] = (2 * torch.rand(shape, generator=generator, dtype=f64) - 1) * bound
    params["c"] = torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(m)
    params["c0"] = torch.zeros(o, dtype=f64)
    return params


_BATCH_KEY = {"rnn": "U", "ssm": "U", "lru": "B_re", "lstm": "weight_ih", "gru": "weight_ih"}


def copies(params: Mapping[str, Tensor], cfg: StudentConfig) -> int | None:
    """Number r of copies of batched parameters (leading dim r), None when unbatched."""
    value = params[_BATCH_KEY[cfg.family]]  # a matrix in every unbatched student
    return value.shape[0] if value.dim() == 3 else None


def any_param(params: Mapping[str, Tensor]) -> Tensor:
    """One of the parameters: for their dtype and device (all share them)."""
    return next(iter(params.values()))


def recurrence(
    params: Mapping[str, Tensor],
    cfg: StudentConfig,
    raw: bool = False,
    maps: Sequence[str] | None = None,
) -> Tensor:
    """The matrix A, or its diagonal ``a`` (..., m) for the diagonal structure.

    ``raw=True`` uses the evaluation map (for ``direct``: w itself, no relu), as the
    perturbation experiments do; otherwise the training map. ``maps`` names the
    parameterisation of each copy (r,) of batched parameters, for a pack that mixes them;
    by default every copy uses ``cfg.parameterisation``. rnn and ssm only.
    """
    if not cfg.has_axes:
        raise ValueError(f"family {cfg.family!r} has no recurrence matrix A")
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


def eigenvalues(
    params: Mapping[str, Tensor],
    cfg: StudentConfig,
    raw: bool = True,
    maps: Sequence[str] | None = None,
) -> Tensor:
    """Real parts of the eigenvalues of A, (..., m); Euler-stable iff all in (0, 2/dt).

    lru: the decay rates a_j = (1 - |lambda_j|) / dt (..., m), so that 1 - dt a_j = |lambda_j|
    is the rnn's diagonal multiplier 1 - dt a_j: an eigenvalue below 0 would be |lambda| > 1
    and one above 2/dt |lambda| < -1; the exp-exp map allows neither (a_j in [0, 1/dt],
    exactly 0 only when exp(nu_j) underflows). lstm, gru: no fixed recurrence matrix, an
    empty (..., 0).
    """
    if cfg.family == "lru":
        return -torch.expm1(-torch.exp(params["nu"])) / cfg.dt
    if cfg.family in GATES:
        r = copies(params, cfg)
        return any_param(params).new_zeros(*(() if r is None else (r,)), 0)
    rec = recurrence(params, cfg, raw, maps)
    if cfg.structure == "diagonal":
        return rec
    if cfg.structure == "orthogonal":  # P diag P^T is symmetric
        return torch.linalg.eigvalsh(rec)
    return torch.linalg.eigvals(rec).real


def lru_modulus(params: Mapping[str, Tensor]) -> Tensor:
    """|lambda_j| = exp(-exp(nu_j)) of an lru, (..., m): below 1 for every finite nu (in
    floating point it rounds to 1 once exp(nu) is below the unit round-off)."""
    return torch.exp(-torch.exp(params["nu"]))


# ---------------------------------------------------------------------------- forward
def student_forward(
    params: Mapping[str, Tensor],
    x: Tensor,
    cfg: StudentConfig,
    raw: bool = False,
    maps: Sequence[str] | None = None,
    kernel: str | None = None,
) -> Tensor:
    """Outputs yhat of the student(s) on inputs x.

    Args:
        params: raw parameters; each either unbatched (w (m,), U (m, d), c (o, m), ...)
            or with a leading dim r of copies (w (r, m), U (r, m, d), ...).
        x: inputs (b, t, d), shared by all copies, or (r, b, t, d), one batch per copy
            (packed training: every copy sees its own data).
        raw: evaluation map of f (see ``recurrence``; rnn and ssm only).
        maps: parameterisation of each copy, for a pack that mixes them (rnn and ssm).
        kernel: time loop of the diagonal rnn and ssm on the CPU: ``fused`` (compiled,
            ``kernels.FusedRecurrence``) or ``torch`` (the reference, op by op); None:
            ``fused`` where numba is installed (``default_kernel``).
    Returns:
        yhat (b, t, o), or (r, b, t, o) for batched parameters.
    """
    x = x.to(any_param(params).dtype)
    if cfg.family == "lru":
        return _lru_forward(params, x)
    if cfg.family in GATES:
        return _gated_forward(params, x, cfg)
    rec = recurrence(params, cfg, raw, maps)
    if cfg.activation == "linear" and cfg.fast_linear:  # the ssm then equals the rnn
        return _linear_convolution(params, rec, x, cfg)
    if cfg.structure == "diagonal" and x.device.type == "cpu" and _fused(kernel):
        return _fused_forward(params, rec, x, cfg)
    if cfg.family == "rnn" and cfg.structure == "diagonal" and copies(params, cfg) is not None:
        args = (params["U"], params["b"], rec, params["c"])
        keep = torch.is_grad_enabled() and any(v.requires_grad for v in args)
        y = DiagonalRecurrence.apply(x, *args, cfg.dt, cfg.activation, keep)  # (r, b, t, o)
        return y + params["c0"][:, None, None, :]
    act = ACTIVATIONS[cfg.activation]
    if cfg.family == "ssm":  # linear state recurrence, sigma before the readout
        states = _hidden_states(params, rec, x, cfg, ACTIVATIONS["linear"])
        return _readout(params, act(states))
    states = _hidden_states(params, rec, x, cfg, act)  # (b, t, m) or time-major (t, r, b, m)
    return _readout(params, states)


KERNELS = ("fused", "torch")


def default_kernel() -> str:
    """``fused`` where numba is installed, else ``torch``."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return "torch"
    return "fused"


def _fused(kernel: str | None) -> bool:
    """Whether the diagonal time loop runs in the fused kernels."""
    kernel = default_kernel() if kernel is None else kernel
    check_choice("kernel", kernel, KERNELS)
    return kernel == "fused"


def _fused_forward(params: Mapping[str, Tensor], rec: Tensor, x: Tensor, cfg: StudentConfig):
    """The diagonal rnn or ssm by ``kernels.FusedRecurrence`` (one compiled call forward,
    one backward); unbatched parameters run as r = 1. Same maths as the torch path."""
    from .kernels import FusedRecurrence

    U, bias, c, c0 = params["U"], params["b"], params["c"], params["c0"]
    single = U.dim() == 2
    if single:
        U, bias, rec, c, c0 = U[None], bias[None], rec[None], c[None], c0[None]
    args = (U, bias, rec, c)
    keep = torch.is_grad_enabled() and any(v.requires_grad for v in args)
    ssm = cfg.family == "ssm"
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


class DiagonalRecurrence(torch.autograd.Function):
    """Outputs of r diagonal rnn students, with a hand-written backward pass through time.

    Forward, for k = 0..T-1 from h_0 = 0:
        u_k = U x_k + b - a h_k,   s_k = sigma(u_k),   h_{k+1} = h_k + dt s_k,   y_k = c h_{k+1}
    with x (r, b, t, d) one batch per copy or (b, t, d) shared, U (r, m, d), b (r, m),
    a (r, m) (the eigenvalues, f already applied), c (r, o, m); returns y (r, b, t, o),
    contiguous (it is computed time-major, then transposed once: the loss and its
    gradient are then contiguous ops).
    ``keep=False`` (no gradient needed) holds two states and one activation, not all T.

    Each step's states are one contiguous (r, m, b) block, feature-major: the readout
    c h_{k+1} is then a product (r, o, m) x (r, m, b) whose long dimension is contiguous
    (3-8x cheaper than (r, b, m) x (r, m, o), which reduces over a short inner dimension),
    and the inputs x_k (r, d, b) broadcast over m along whole rows. U x_k + b is formed
    step by step in cache, not read back from a (t, r, m, b) array. Against the same loop
    batch-major, (r, b, m), with U x + b formed for all steps first (measured side by
    side): a 12-pack's training step 1.3-1.7x faster at m = 8-14 and the same at m = 2,
    a perturbation pass at m = 2 1.5-1.9x.

    Backward, with g the gradient of the loss in h_{k+1} (times dt), for k = T-1..0:
        g += dt c^T dy_k,   dc += dy_k h_{k+1}^T,   du_k = g sigma'(u_k),
        dU += du_k x_k^T,   db += du_k,   da -= du_k h_k,   g += dt (-a) du_k
    Every step is a handful of in-place ops on (r, m, b) blocks, with no autograd graph and
    no (t, r, m, b) gradient: 1.5-2.7x faster than autograd through the same loop (``make
    bench``, section bptt). sigma'(u) comes from s, as autograd computes it: 1 - s^2 for
    tanh, 0 where |s| = 1 for hardtanh, 1 for linear. In float32 on the CPU, tanh is
    2 sigmoid(2u) - 1 (``sigmoid_tanh``).
    """

    @staticmethod
    def forward(ctx, x, U, b, a, c, dt, activation, keep):
        # tanh as 2 sigmoid(2 u) - 1 (``sigmoid_tanh``): the loop forms 2 u directly
        # (scaling by 2 is exact), then one op maps sigmoid to s
        fast = activation == "tanh" and sigmoid_tanh(U)
        scale = 2.0 if fast else 1.0
        xt = _feature_major_inputs(x)  # (t, r or 1, d, b)
        T, _, d, n = xt.shape
        r, m = a.shape
        Us = (U * scale).unsqueeze(-1).unbind(2)  # d columns (r, m, 1)
        bias = (b * scale).unsqueeze(-1).expand(r, m, n).contiguous()
        na = (-scale * a).unsqueeze(-1).expand(r, m, n).contiguous()  # no broadcast per step
        minus_one = a.new_full((), -1.0)
        H = a.new_empty(T + 1 if keep else 2, r, m, n)  # h_0..h_T, or two in turn
        S = a.new_empty(T if keep else 1, r, m, n)  # s_k = sigma(u_k)
        Y = a.new_empty(T, r, c.shape[1], n)
        Hs, Ss, Ys = H.unbind(0), S.unbind(0), Y.unbind(0)
        xs = [xt[:, :, j : j + 1, :].unbind(0) for j in range(d)]  # (r or 1, 1, b) per step
        Hs[0].zero_()
        u = torch.empty_like(bias)
        for k in range(T):
            h, s = (Hs[k], Ss[k]) if keep else (Hs[k % 2], Ss[0])
            h_next = Hs[k + 1] if keep else Hs[(k + 1) % 2]
            torch.addcmul(bias, Us[0], xs[0][k], out=u)  # u = U x_k + b, formed in cache
            for col, xj in zip(Us[1:], xs[1:], strict=True):
                u.addcmul_(col, xj[k])
            u.addcmul_(h, na)  # - a h_k
            if fast:
                torch.sigmoid(u, out=s)
                torch.add(minus_one, s, alpha=2.0, out=s)
            elif activation == "tanh":
                torch.tanh(u, out=s)
            elif activation == "hardtanh":
                torch.clamp(u, -1.0, 1.0, out=s)
            else:
                s.copy_(u)
            torch.add(h, s, alpha=dt, out=h_next)
            torch.bmm(c, h_next, out=Ys[k])  # y_k = c h_{k+1}: (r, o, b)
        if keep:
            ctx.save_for_backward(xt, H, S, na / scale, c)
        ctx.dt, ctx.activation = dt, activation
        return Y.permute(1, 3, 0, 2).contiguous()  # (r, b, t, o)

    @staticmethod
    def backward(ctx, dY):
        xt, H, S, na, c = ctx.saved_tensors
        dt, activation = ctx.dt, ctx.activation
        dYs = dY.permute(2, 0, 3, 1).contiguous().unbind(0)  # time-major, as the states: (r, o, b)
        cols = [c[:, j, :, None] for j in range(c.shape[1])]  # (r, m, 1) rows of c, as columns
        dc = torch.zeros_like(c)
        g = torch.zeros_like(S[0])  # dt x the gradient in h_{k+1}
        du = torch.empty_like(g)  # the gradient in u_k
        da, db = torch.zeros_like(g), torch.zeros_like(g)
        dU = [torch.zeros_like(g) for _ in range(xt.shape[2])]
        Ss, Hs, xs = S.unbind(0), H.unbind(0), xt.unbind(0)
        for k in range(len(Ss) - 1, -1, -1):
            for j, col in enumerate(cols):  # o broadcast multiply-adds: cheaper than a bmm
                g.addcmul_(dYs[k][:, j : j + 1, :], col, value=dt)
            dc.baddbmm_(dYs[k], Hs[k + 1].transpose(1, 2))
            if activation == "tanh":
                torch.ops.aten.tanh_backward.grad_input(g, Ss[k], grad_input=du)
            elif activation == "hardtanh":
                torch.ops.aten.hardtanh_backward.grad_input(g, Ss[k], -1.0, 1.0, grad_input=du)
            else:
                du.copy_(g)
            da.addcmul_(du, Hs[k])
            db.add_(du)
            for j, acc in enumerate(dU):
                acc.addcmul_(du, xs[k][:, j : j + 1, :])
            g.addcmul_(du, na, value=dt)
        dU = torch.stack([acc.sum(-1) for acc in dU], dim=-1)
        return None, dU, db.sum(-1), -da.sum(-1), dc, None, None, None


def impulse_response(
    params: Mapping[str, Tensor], rec: Tensor, cfg: StudentConfig, T: int
) -> tuple[Tensor, Tensor]:
    """Kernels of the linear student: yhat_k = c_0 + sum_{j<=k} (Kb_j + Kx_j x_{k-j}).

    With M = I - dt A, Kx_j = dt c M^j U and Kb_j = dt c M^j b.
    Returns Kx ([r,] T, o, d) and Kb ([r,] T, o). rnn, and ssm with linear activation.
    """
    if not cfg.has_axes or (cfg.family == "ssm" and cfg.activation != "linear"):
        raise ValueError(f"no impulse response for family {cfg.family!r} ({cfg.activation})")
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


# ---------------------------------------------------------------------------- lru
def lru_kernel(params: Mapping[str, Tensor], T: int) -> Tensor:
    """Kernel K_j = Re(C diag(gamma lambda^j) B), j = 0..T-1, of an lru: ([r,] T, o, d).

    Real arithmetic with closed-form powers: |lambda|^j = exp(-j exp(nu)), phase j exp(theta),
    so that it is exact at long horizons too (no repeated products).
    """
    rate, phase = torch.exp(params["nu"]), torch.exp(params["theta"])  # ([r,] m)
    j = torch.arange(1, T, dtype=rate.dtype, device=rate.device)[:, None]  # (T-1, 1)
    modulus = torch.exp(-j * rate.unsqueeze(-2))  # ([r,] T-1, m); j = 0 apart: 0 * inf
    angle = j * phase.unsqueeze(-2)
    gamma = torch.sqrt(-torch.expm1(-2 * rate)).unsqueeze(-2)  # sqrt(1 - |lambda|^2)
    first = torch.ones_like(gamma)
    re = gamma * torch.cat([first, modulus * torch.cos(angle)], dim=-2)  # ([r,] T, m)
    im = gamma * torch.cat([torch.zeros_like(first), modulus * torch.sin(angle)], dim=-2)
    Br, Bi = params["B_re"].unsqueeze(-3), params["B_im"].unsqueeze(-3)  # ([r,] 1, m, d)
    Cr, Ci = params["C_re"].unsqueeze(-1), params["C_im"].unsqueeze(-1)  # ([r,] o, m, 1)
    # Re((Cr + i Ci) diag(re + i im) (Br + i Bi)) = C diag(re) P - C diag(im) Q with
    P = Cr * Br - Ci * Bi  # ([r,] o, m, d)
    Q = Cr * Bi + Ci * Br
    return torch.einsum("...jn,...ond->...jod", re, P) - torch.einsum("...jn,...ond->...jod", im, Q)


def _fft_length(n: int) -> int:
    """Smallest even 5-smooth integer >= n (a fast FFT size)."""
    n += n % 2
    while True:
        k = n
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return n
        n += 2


def causal_convolution(K: Tensor, x: Tensor) -> Tensor:
    """y_k = sum_{j=0..k} K_j x_{k-j} by FFT along time, zero-padded to >= 2T (no wrap).

    K ([r,] T, o, d); x (b, T, d) shared, or (r, b, T, d) one batch per copy.
    Returns ([r,] b, T, o).
    """
    T = x.shape[-2]
    n = _fft_length(2 * T)
    Kf = torch.fft.rfft(K, n=n, dim=-3)  # ([r,] F, o, d)
    xf = torch.fft.rfft(x, n=n, dim=-2)  # ([r,] b, F, d)
    if x.dim() == 4:
        yf = torch.einsum("rfod,rbfd->rbfo", Kf, xf)
    else:
        yf = torch.einsum("...fod,bfd->...bfo", Kf, xf)
    return torch.fft.irfft(yf, n=n, dim=-2)[..., :T, :]


def _lru_forward(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """yhat_k = sum_{j<=k} K_j x_{k-j} + D x_k (the lru's recurrence, unrolled exactly)."""
    y = causal_convolution(lru_kernel(params, x.shape[-2]), x)
    D = params["D"]
    if D.dim() == 2:
        return y + F.linear(x, D)
    if x.dim() == 4:
        return y + torch.einsum("rbtd,rod->rbto", x, D)
    return y + torch.einsum("btd,rod->rbto", x, D)


# ---------------------------------------------------------------------------- lstm, gru
# r copies run as one call of torch's fused cell with block-diagonal weights (hidden r*m,
# input r*d) while that is cheap: at most PACK_WIDTH hidden units and PACK_AREA / m^2
# copies per call, so small widths pack many copies and m >= 56 runs copy by copy.
# Measured on a shared 2-core CPU (float64, b=128, T=100, forward + backward, d=1): 12
# copies of m=14 in one call of width 168 took 0.38-0.53 s against 0.61-0.90 s for 12
# calls; 24 copies of m=8: 0.43-0.51 s against 0.66-1.05 s; m=32 gained little at 2 copies
# a call (0.94-0.99 s vs 1.06-1.14 s) and lost at 4 (1.24 s); m=64 lost at 2 (1.12 vs 1.03 s).
# On an H200 (cudnn) the same 12 copies of m=14 took 6.4-6.8 ms in one call against 64 ms in
# 12 calls (float64), 4.4 ms against 21 ms (float32).
PACK_WIDTH = 192
PACK_AREA = 3072
_GATED_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _gated_states(weights: Sequence[Tensor], x: Tensor, family: str) -> Tensor:
    """Hidden states h_1..h_T (b, T, H) of torch's fused LSTM / GRU layer, h_0 = c_0 = 0."""
    h0 = x.new_zeros(1, x.shape[0], weights[1].shape[-1])
    train = torch.is_grad_enabled()  # cudnn's backward needs its training mode
    with warnings.catch_warnings():  # cudnn copies the (rebuilt) weights into one buffer
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
        if family == "lstm":
            return torch.lstm(x, (h0, h0), list(weights), True, 1, 0.0, train, False, True)[0]
        return torch.gru(x, h0, list(weights), True, 1, 0.0, train, False, True)[0]


def _block_diagonal(w: Tensor, gates: int) -> Tensor:
    """(k, gates*m, n) weights of k copies -> (gates*k*m, k*n): gate g's rows of copy i
    at rows g*k*m + i*m.., reading only copy i's columns i*n..(i+1)*n."""
    k, rows, n = w.shape
    m = rows // gates
    eye = torch.eye(k, dtype=w.dtype, device=w.device)[:, None, None, :, None]
    blocks = w.reshape(k, gates, m, 1, n) * eye  # (k, G, m, k, n), zero off the diagonal
    return blocks.transpose(0, 1).reshape(gates * k * m, k * n)


def _gated_forward(params: Mapping[str, Tensor], x: Tensor, cfg: StudentConfig) -> Tensor:
    """yhat_k = c h_{k+1} + c0 for torch's LSTM / GRU cell (the fused implementation)."""
    r = copies(params, cfg)
    c, c0 = params["c"], params["c0"]
    if r is None:
        return F.linear(_gated_states([params[k] for k in _GATED_NAMES], x, cfg.family), c, c0)
    m, G = cfg.width, GATES[cfg.family]
    group = max(1, min(r, PACK_WIDTH // m, PACK_AREA // (m * m)))  # copies per call
    outputs = []
    for lo in range(0, r, group):
        part = slice(lo, min(r, lo + group))
        xs = x[part] if x.dim() == 4 else x.unsqueeze(0)  # ([k|1], b, t, d)
        if part.stop - lo == 1:
            weights = [params[name][lo] for name in _GATED_NAMES]
            states = _gated_states(weights, xs[0], cfg.family).unsqueeze(-2)  # (b, t, 1, m)
        else:
            k = part.stop - lo
            w_ih, w_hh = (_block_diagonal(params[n][part], G) for n in _GATED_NAMES[:2])
            b_ih, b_hh = (
                params[n][part].reshape(k, G, m).transpose(0, 1).reshape(-1)
                for n in _GATED_NAMES[2:]
            )
            xs = xs.expand(k, *xs.shape[1:]).permute(1, 2, 0, 3)  # (b, t, k, d)
            xin = xs.reshape(*xs.shape[:2], -1)  # copy i reads features i*d..(i+1)*d
            states = _gated_states([w_ih, w_hh, b_ih, b_hh], xin, cfg.family)
            states = states.reshape(*states.shape[:2], k, m)  # (b, t, k, m)
        y = torch.einsum("btkm,kom->kbto", states, c[part])
        outputs.append(y + c0[part, None, None, :])
    return torch.cat(outputs)


# ---------------------------------------------------------------------------- module
class StudentRNN(nn.Module):
    """Trainable student of any family; its parameters are the raw ones of ``init_params``
    (rnn, ssm: w, P | A, U, b, c, c0; lru: nu, theta, B_re, B_im, C_re, C_im, D; lstm,
    gru: weight_ih, weight_hh, bias_ih, bias_hh, c, c0)."""

    def __init__(self, config: StudentConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        for name, value in init_params(config, generator).items():
            self.register_parameter(name, nn.Parameter(value))

    def raw_params(self) -> dict[str, Tensor]:
        return dict(self.named_parameters())

    def forward(self, x: Tensor) -> Tensor:
        """x (b, t, d) -> yhat (b, t, o)."""
        return student_forward(self.raw_params(), x, self.config)

    @torch.no_grad()
    def eigenvalues(self, raw: bool = True) -> Tensor:
        return eigenvalues(self.raw_params(), self.config, raw).detach()

    @torch.no_grad()
    def stability_margin(self) -> float:
        """Distance of the spectrum of A to the Euler bounds (0, 2/dt); > 0 means stable.
        NaN for lstm and gru (no fixed recurrence matrix)."""
        eig = self.eigenvalues()
        if eig.numel() == 0:
            return math.nan
        return float(torch.minimum(eig.min(), 2 / self.config.dt - eig.max()))

    @torch.no_grad()
    def project_(self) -> None:
        """direct: w <- relu(w), so that evaluation with w itself equals training's f.
        rnn and ssm only (the other families have no parameterisation)."""
        cfg = self.config
        if cfg.has_axes and cfg.parameterisation == "direct" and cfg.structure != "dense":
            self.w.clamp_(min=0)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_student(path, model: StudentRNN, **meta) -> None:
    """Checkpoint = config + state dict (+ metadata): enough to rebuild the model alone."""
    torch.save({"config": asdict(model.config), "state_dict": model.state_dict(), **meta}, path)


def read_checkpoint(path, map_location="cpu") -> dict:
    """torch.load of a workflow file, with an error that names the file and the way out."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, pickle garbage, wrong format
        raise ValueError(
            f"{path}: cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "the file is corrupt or truncated: delete it and rerun the workflow to rebuild it"
        ) from err


def load_student(path, map_location="cpu") -> tuple[StudentRNN, dict]:
    checkpoint = read_checkpoint(path, map_location)
    model = StudentRNN(StudentConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location), checkpoint


def stack_students(models: Sequence[StudentRNN]) -> tuple[dict[str, Tensor], StudentConfig, list]:
    """Raw parameters of r students with a leading dim r, their shared config and the
    parameterisation of each (``maps`` of ``student_forward``); the students may differ
    in their parameterisation only."""
    cfg = models[0].config
    shared = asdict(cfg) | {"parameterisation": None}
    if any(asdict(m.config) | {"parameterisation": None} != shared for m in models):
        raise ValueError("stacked students need equal configs but for the parameterisation")
    params = {
        k: torch.stack([m.raw_params()[k].detach() for m in models]) for k in models[0].raw_params()
    }
    return params, cfg, [m.config.parameterisation for m in models]


def retyped(model: StudentRNN, dtype: str = "float64", **overrides) -> StudentRNN:
    """A copy of ``model`` in another precision (and config overrides), same parameters."""
    config = StudentConfig(**(asdict(model.config) | {"dtype": dtype} | overrides))
    copy = StudentRNN(config)
    with torch.no_grad():
        for name, value in model.raw_params().items():
            getattr(copy, name).copy_(value.detach())
    return copy.to(any_param(model.raw_params()).device)
