"""Students: one trainable module for every model family (method §2 and §6).

``StudentRNN`` is the ``nn.Module`` whose parameters are a family's *raw* parameters;
``student_forward`` is its forward map, a function of a dict of raw parameters in which
every tensor may carry a leading dim r of perturbed copies, so a perturbation sweep
evaluates all its draws in one pass. What differs between families (the parameters and
their initialisation, the forward map, eigenvalues, grid axes) is asked of the family
(``families.get(cfg.family)``: one module per family, see ``families``):

    rnn   h_{k+1} = h_k + dt * sigma(U x_k + b - A h_k),   yhat_k = c h_{k+1} + c_0
    ssm   h_{k+1} = h_k + dt * (U x_k + b - A h_k),        yhat_k = c sigma(h_{k+1}) + c_0
    lru   h_{k+1} = lambda * h_k + gamma * (B x_k),         yhat_k = Re(C h_{k+1}) + D x_k
          lambda_j = exp(-exp(nu_j) + i exp(theta_j)),  gamma_j = sqrt(1 - |lambda_j|^2)
    lstm, gru   torch.nn.LSTM / GRU cells (one layer),     yhat_k = c h_{k+1} + c_0

with h_0 = 0. rnn and ssm share the structures (A) x parameterisations (f) x activations
(sigma); for the other families those three axes do not apply and read "none".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from . import families
from .checks import best_reach_problem, eig_init_problem
from .families import any_param, check_choice
from .families._diagonal import DiagonalRecurrence
from .families.gated import PACK_AREA, PACK_WIDTH
from .families.lru import causal_convolution, lru_kernel, lru_modulus
from .families.residual import (
    ACTIVATIONS,
    KERNELS,
    PARAMETERISATIONS,
    STRUCTURES,
    Parameterisation,
    default_kernel,
    set_default_kernel,
    sigmoid_tanh,
)

__all__ = [  # the names of the families' modules kept here, where callers import them
    "ACTIVATIONS",
    "DiagonalRecurrence",
    "KERNELS",
    "PACK_AREA",
    "PACK_WIDTH",
    "PARAMETERISATIONS",
    "Parameterisation",
    "causal_convolution",
    "default_kernel",
    "lru_kernel",
    "lru_modulus",
    "set_default_kernel",
    "sigmoid_tanh",
]

# where a family's axes do not apply, the three fields of a StudentConfig read NO_AXIS
AXES = ("structure", "parameterisation", "activation")
NO_AXIS = "none"
FAMILIES = families.BUILTINS  # the built-in families (a config may name plug-ins too)
AXES_APPLY = {name: families.get(name).axes for name in FAMILIES}
INITS = ("uniform", "reference")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
        NaN for a family without eigenvalues (lstm, gru: no fixed recurrence matrix)."""
        eig = self.eigenvalues()
        if eig.numel() == 0:
            return math.nan
        return float(torch.minimum(eig.min(), 2 / self.config.dt - eig.max()))

    @torch.no_grad()
    def project_(self) -> None:
        """The family's projection: rnn and ssm with direct: w <- relu(w), so that
        evaluation with w itself equals training's f; nothing for the other families."""
        families.get(self.config.family).project_(self.raw_params(), self.config)

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


# ---------------------------------------------------------------------------- config
@dataclass
class StudentConfig:
    """Everything needed to rebuild a student (stored in its checkpoint).

    For a family without grid axes (lru, lstm, gru), structure, parameterisation and
    activation do not apply: they read "none", their defaults are normalised to it, and
    any other value is a ValueError (a value equal to the default, e.g.
    structure="diagonal", cannot be told apart from it and is normalised too). ``family``
    is the last field, so checkpoints written before it load as rnn; it is a registered
    name or a plug-in's ``package.module:Name`` (``families.get``).
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
    family: str = families.DEFAULT  # rnn | ssm | lru | lstm | gru | module:Name (method §6)

    def __post_init__(self):
        if families.get(self.family).axes:
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
        return families.get(self.family).axes

    @property
    def convolution(self) -> bool:
        """Whether the forward pass is a convolution (no time loop over hidden states)."""
        return families.get(self.family).convolution(self)


# ---------------------------------------------------------------------------- params
def init_params(cfg: StudentConfig, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Raw parameters of a fresh student (method §2 initialisation), in ``cfg.dtype``: the
    family's draw (``Family.init``), made in float64, then cast."""
    params = families.get(cfg.family).init(cfg, generator)
    return {k: v.to(cfg.torch_dtype) for k, v in params.items()}


def copies(params: Mapping[str, Tensor], cfg: StudentConfig) -> int | None:
    """Number r of copies of batched parameters (leading dim r), None when unbatched."""
    value = params[families.get(cfg.family).batch_key]  # a matrix in every unbatched student
    return value.shape[0] if value.dim() == 3 else None


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
    by default every copy uses ``cfg.parameterisation``. rnn and ssm only (a ValueError
    for a family without a recurrence matrix).
    """
    return families.get(cfg.family).recurrence(params, cfg, raw, maps)


def eigenvalues(
    params: Mapping[str, Tensor],
    cfg: StudentConfig,
    raw: bool = True,
    maps: Sequence[str] | None = None,
) -> Tensor:
    """Real parts of the eigenvalues of A, (..., m); Euler-stable iff all in (0, 2/dt).

    lru: the decay rates a_j = (1 - |lambda_j|) / dt (..., m) (``families.lru``). A family
    without a fixed recurrence matrix (lstm, gru): an empty (..., 0).
    """
    eig = families.get(cfg.family).eigenvalues(params, cfg, raw, maps)
    if eig is None:
        r = copies(params, cfg)
        return any_param(params).new_zeros(*(() if r is None else (r,)), 0)
    return eig


def impulse_response(
    params: Mapping[str, Tensor], rec: Tensor, cfg: StudentConfig, T: int
) -> tuple[Tensor, Tensor]:
    """Kernels of the linear student: yhat_k = c_0 + sum_{j<=k} (Kb_j + Kx_j x_{k-j}).

    With M = I - dt A, Kx_j = dt c M^j U and Kb_j = dt c M^j b.
    Returns Kx ([r,] T, o, d) and Kb ([r,] T, o). rnn, and ssm with linear activation.
    """
    family = families.get(cfg.family)
    if not hasattr(family, "impulse_response"):
        raise ValueError(f"no impulse response for family {cfg.family!r} ({cfg.activation})")
    return family.impulse_response(params, rec, cfg, T)


# ---------------------------------------------------------------------------- forward
def student_forward(
    params: Mapping[str, Tensor],
    x: Tensor,
    cfg: StudentConfig,
    raw: bool = False,
    maps: Sequence[str] | None = None,
    kernel: str | None = None,
) -> Tensor:
    """Outputs yhat of the student(s) on inputs x: the family's forward map.

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
    return families.get(cfg.family).forward(params, x, cfg, raw=raw, maps=maps, kernel=kernel)
