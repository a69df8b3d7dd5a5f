"""Students: the residual RNN of method §2, one class for every structure x f x sigma.

    h_0 = 0,   h_{k+1} = h_k + dt * sigma(U x_k + b - A h_k),   yhat_k = c h_{k+1} + c_0

The recurrence is written once, as a function of a dict of *raw* parameters
(``student_forward``); every tensor may carry a leading dim r of perturbed copies, so a
perturbation sweep evaluates all its draws in one pass. ``StudentRNN`` is the trainable
``nn.Module`` around it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import best_reach_problem, eig_init_problem

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

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda v: v,
    "tanh": torch.tanh,
    "hardtanh": F.hardtanh,
}


# ---------------------------------------------------------------------------- config
@dataclass
class StudentConfig:
    """Everything needed to rebuild a student (stored in its checkpoint)."""

    width: int  # m, hidden units
    structure: str = "diagonal"  # diagonal | orthogonal (P diag(f(w)) P^T) | dense (free A)
    parameterisation: str = "direct"  # direct | exp | softplus | best (ignored for dense)
    activation: str = "linear"  # linear | tanh | hardtanh
    dt: float = 1.0  # Euler step
    eps: float = 0.6  # `best`: a = 1/(w^2+eps) <= 1/eps, keep 1/eps < 2/dt
    eig_init: tuple[float, float] = (0.2, 1.0)  # initial eigenvalues a_i ~ U[lo, hi]
    d_in: int = 1  # d
    d_out: int = 1  # o
    dtype: str = "float32"  # float32 | float64
    fast_linear: bool = True  # linear activation: exact convolution instead of the loop
    init: str = "uniform"  # uniform: a_i ~ U[eig_init] | reference: raw w ~ N(0, 1)

    def __post_init__(self):
        check_choice("structure", self.structure, STRUCTURES)
        check_choice("parameterisation", self.parameterisation, PARAMETERISATIONS)
        check_choice("activation", self.activation, ACTIVATIONS)
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


# ---------------------------------------------------------------------------- params
def init_params(cfg: StudentConfig, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Raw parameters of a fresh student (method §2 initialisation), in ``cfg.dtype``.

    ``init="uniform"``: eigenvalues a_i ~ U[eig_init], w = f^{-1}(a). ``init="reference"``:
    the reference code's raw w ~ N(0, 1) (direct: about half the units get a = relu(w) = 0;
    softplus: a may exceed 2/dt); the dense structure has no w and keeps the uniform draw.
    """
    m, d, o = cfg.width, cfg.d_in, cfg.d_out
    f64 = torch.float64
    lo, hi = cfg.eig_init
    a = lo + (hi - lo) * torch.rand(m, generator=generator, dtype=f64)
    q, r = torch.linalg.qr(torch.randn(m, m, generator=generator, dtype=f64))
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed orthogonal matrix
    params: dict[str, Tensor] = {}
    if cfg.structure == "dense":
        params["A"] = (q * a) @ q.T
    elif cfg.init == "reference":
        params["w"] = torch.randn(m, generator=generator, dtype=f64)
    else:
        params["w"] = PARAMETERISATIONS[cfg.parameterisation].inverse(a, cfg.eps)
        if cfg.structure == "orthogonal":
            params["P"] = q
    params["U"] = torch.randn(m, d, generator=generator, dtype=f64) / math.sqrt(d)
    params["b"] = torch.zeros(m, dtype=f64)
    params["c"] = torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(m)
    params["c0"] = torch.zeros(o, dtype=f64)
    return {k: v.to(cfg.torch_dtype) for k, v in params.items()}


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
    by default every copy uses ``cfg.parameterisation``.
    """
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
    """Real parts of the eigenvalues of A, (..., m); Euler-stable iff all in (0, 2/dt)."""
    rec = recurrence(params, cfg, raw, maps)
    if cfg.structure == "diagonal":
        return rec
    if cfg.structure == "orthogonal":  # P diag P^T is symmetric
        return torch.linalg.eigvalsh(rec)
    return torch.linalg.eigvals(rec).real


# ---------------------------------------------------------------------------- forward
def student_forward(
    params: Mapping[str, Tensor],
    x: Tensor,
    cfg: StudentConfig,
    raw: bool = False,
    maps: Sequence[str] | None = None,
) -> Tensor:
    """Outputs yhat of the student(s) on inputs x.

    Args:
        params: raw parameters; each either unbatched (w (m,), U (m, d), c (o, m), ...)
            or with a leading dim r of copies (w (r, m), U (r, m, d), ...).
        x: inputs (b, t, d), shared by all copies, or (r, b, t, d), one batch per copy
            (packed training: every copy sees its own data).
        raw: evaluation map of f (see ``recurrence``).
        maps: parameterisation of each copy, for a pack that mixes them.
    Returns:
        yhat (b, t, o), or (r, b, t, o) for batched parameters.
    """
    x = x.to(params["U"].dtype)
    rec = recurrence(params, cfg, raw, maps)
    if cfg.activation == "linear" and cfg.fast_linear:
        return _linear_convolution(params, rec, x, cfg)
    states = _hidden_states(params, rec, x, cfg)  # (b, t, m) or time-major (t, r, b, m)
    return _readout(params, states)


def _readout(params: Mapping[str, Tensor], states: Tensor) -> Tensor:
    c, c0 = params["c"], params["c0"]
    if c.dim() == 3:  # (r, o, m), states (t, r, b, m): (t, r, b, o), no copy of the states
        y = states @ c.transpose(-1, -2).unsqueeze(0)
        return y.permute(1, 2, 0, 3) + c0[:, None, None, :]  # (r, b, t, o)
    return F.linear(states, c, c0)


def _hidden_states(
    params: Mapping[str, Tensor], rec: Tensor, x: Tensor, cfg: StudentConfig
) -> Tensor:
    """h_1..h_T by the Euler recurrence, with U x + b formed for all steps.

    Returns (b, t, m) for one student, time-major (t, r, b, m) for r copies.
    """
    U, bias = params["U"], params["b"]
    batched = U.dim() == 3
    xt = x.transpose(0, 1)  # (t, b, d)
    if x.dim() == 4:  # one batch per copy: (r, b, t, d) -> (t, r, b, m), built time-major
        xt = x.permute(2, 0, 1, 3)  # (t, r, b, d), a view
        z = bias[None, :, None, :]
        for j in range(x.shape[-1]):  # sum_j x_j U_j: d broadcast multiply-adds
            z = torch.addcmul(z, xt[..., j : j + 1], U[None, :, None, :, j])
    elif batched:  # (t, 1, b, d) @ (1, r, d, m) -> (t, r, b, m)
        z = xt.unsqueeze(1) @ U.transpose(-1, -2).unsqueeze(0) + bias[None, :, None, :]
    else:
        z = F.linear(xt, U, bias)  # (t, b, m)
    act, dt = ACTIVATIONS[cfg.activation], cfg.dt
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


def impulse_response(
    params: Mapping[str, Tensor], rec: Tensor, cfg: StudentConfig, T: int
) -> tuple[Tensor, Tensor]:
    """Kernels of the linear student: yhat_k = c_0 + sum_{j<=k} (Kb_j + Kx_j x_{k-j}).

    With M = I - dt A, Kx_j = dt c M^j U and Kb_j = dt c M^j b.
    Returns Kx ([r,] T, o, d) and Kb ([r,] T, o).
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
    """The linear student as an exact causal convolution (Toeplitz product)."""
    T = x.shape[-2]
    Kx, Kb = impulse_response(params, rec, cfg, T)
    k = torch.arange(T, device=x.device)
    lag = k[:, None] - k[None, :]  # (t, s): k - s
    causal = (lag >= 0).to(x.dtype)[..., None, None]
    toeplitz = Kx[..., lag.clamp(min=0), :, :] * causal  # ([r,] t, s, o, d)
    if x.dim() == 4:  # one batch per copy
        y = torch.einsum("rksod,rbsd->rbko", toeplitz, x)
    else:
        y = torch.einsum("...ksod,bsd->...bko", toeplitz, x)
    bias = torch.cumsum(Kb, dim=-2)  # ([r,] t, o)
    c0 = params["c0"]
    if c0.dim() == 2:
        return y + (bias + c0[:, None, :]).unsqueeze(1)
    return y + bias + c0


# ---------------------------------------------------------------------------- module
class StudentRNN(nn.Module):
    """Trainable student; its parameters are the raw ones (w, P | A, U, b, c, c0)."""

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
        """Distance of the spectrum of A to the Euler bounds (0, 2/dt); > 0 means stable."""
        eig = self.eigenvalues()
        return float(torch.minimum(eig.min(), 2 / self.config.dt - eig.max()))

    @torch.no_grad()
    def project_(self) -> None:
        """direct: w <- relu(w), so that evaluation with w itself equals training's f."""
        if self.config.parameterisation == "direct" and self.config.structure != "dense":
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
    return copy.to(model.c.device)
