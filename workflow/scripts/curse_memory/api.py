"""The public API: the memory function and the perturbation curve of *any* model.

The workflow's own estimators, opened to a model built elsewhere (documented in
``docs/api.md``)::

    from curse_memory import api

    t, memory = api.memory_function(model, horizon=1000)   # any causal sequence map
    fit = api.memory_decay_fit(t, memory, t_min=10)        # exponential or polynomial?
    curve = api.perturbation_curve(model, x, y, api.beta_grid(), repeats=10)

``memory_function`` is the estimator of method §4 (``memory.memory_function``, the one the
workflow's target and student memory jobs run); ``perturbation_curve`` is E(beta) of
method §3 for a ``torch.nn.Module``, perturbing its parameters (the workflow's own
perturbation jobs act on the raw parameters of its students, ``perturbation``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import memory as _memory
from .curves import monotone_envelope
from .perturbation import beta_grid
from .targets import TargetSpec, make_target

__all__ = [
    "AMPLITUDES",
    "NORMS",
    "TargetSpec",
    "beta_grid",
    "make_target",
    "memory_decay_fit",
    "memory_function",
    "perturbation_curve",
]

AMPLITUDES = (0.1, 1.0, 10.0, 100.0)  # the workflow's default Heaviside amplitudes
NORMS = ("inf", "l2")


def _as_numpy_map(fn) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` as a map on numpy arrays: an ``nn.Module`` is called on a tensor of its
    parameters' dtype and device, without gradients; a tuple output gives its first item."""
    if isinstance(fn, torch.nn.Module):
        first = next(iter(fn.parameters()), None)
        dtype = first.dtype if first is not None else torch.float64
        device = first.device if first is not None else torch.device("cpu")

        def call(x: np.ndarray):
            with torch.no_grad():
                return fn(torch.as_tensor(x, dtype=dtype, device=device))

    else:
        call = fn

    def apply(x: np.ndarray) -> np.ndarray:
        y = call(x)
        if isinstance(y, tuple):  # e.g. torch.nn.GRU's (output, h_n)
            y = y[0]
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().double().numpy()
        return np.asarray(y, dtype=float)

    return apply


def memory_function(
    fn,
    horizon: int,
    amplitudes: Sequence[float] = AMPLITUDES,
    dt: float = 1.0,
    d: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The memory function of a causal sequence map (method §4).

    ``fn`` maps inputs (batch, time, d) to outputs (batch, time, o): a ``torch.nn.Module``
    (called on a tensor of its own dtype and device, without gradients; a tuple output
    gives its first item) or any callable on numpy arrays returning an array or tensor.
    It is fed the Heaviside inputs u^x_k = x (every amplitude along +-e_i, i < d) for
    ``horizon`` steps, and

        Mhat(t_k) = max_x |y_{k+1} - y_k| / dt / (|x|_inf + 1),   t_k = (k + 1) dt.

    Returns t (horizon-1,) and Mhat (horizon-1,) (([r,] leading dims of a map that returns
    r models' outputs at once are kept). For a linear functional with kernel rho, Mhat
    tends to |rho(t)| as the amplitudes grow. Use float64 for a tail that falls far.
    """
    return _memory.memory_function(_as_numpy_map(fn), horizon, d, dt, amplitudes)


def memory_decay_fit(t, memory, t_min: float = 0.0, floor: float = 1e-10) -> dict:
    """Fits of the tail t >= t_min: log M = a - lambda t against log M = a - p log(1 + t).

    Returns ``decay`` (exponential, polynomial, non-decaying or undetermined), both rates
    (``rate_exp`` lambda, ``rate_pol`` p), both R^2 (``fit_exp``, ``fit_pol``) and
    ``n_points``; values below ``floor`` times the peak are dropped as round-off.
    """
    return _memory.decay_fit(t, memory, t_min=t_min, floor=floor)


def _directions(params, repeats: int, norm: str, generator) -> list[list[torch.Tensor]]:
    """R Gaussian directions over the parameters, each of size 1: every tensor max-abs 1
    (``inf``), or Euclidean norm 1 over all of them (``l2``)."""
    draws = []
    for _ in range(repeats):
        noise = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
        if norm == "inf":
            noise = [v / v.abs().max() for v in noise]
        else:
            total = torch.sqrt(sum(v.pow(2).sum() for v in noise))
            noise = [v / total for v in noise]
        draws.append(noise)
    return draws


@torch.no_grad()
def perturbation_curve(
    module: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    betas: Sequence[float],
    repeats: int = 10,
    norm: str = "inf",
    generator: torch.Generator | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    common_directions: bool = False,
) -> dict:
    """E(beta) of any ``torch.nn.Module`` on inputs ``x`` and targets ``y`` (method §3).

    For each beta, ``repeats`` draws of Gaussian noise over the module's parameters (those
    with ``requires_grad``), each of size exactly beta: ``inf`` rescales every tensor to
    max-abs beta (the reference code), ``l2`` gives the whole draw Euclidean norm beta (the
    paper's definition). Each draw is added to the parameters in place, ``loss(module(x),
    y)`` (default: MSE) is evaluated, and the parameters are copied back: the module is
    bitwise unchanged after the call (also after an error). ``common_directions`` draws
    the R directions once and scales them by every beta (common random numbers: a smoother
    curve); otherwise each beta draws afresh. beta = 0 is evaluated once.

    Returns a dict of numpy arrays: ``beta`` (B,), ``errors`` (B, R) every draw's loss
    (non-finite: inf), ``error`` (B,) their max over draws, and ``monotone`` (B,) the
    running max over beta, E(beta) = max_{beta' <= beta} error(beta').
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
    if repeats < 1:
        raise ValueError(f"need repeats >= 1, got {repeats}")
    loss = loss or torch.nn.functional.mse_loss
    generator = generator or torch.Generator().manual_seed(0)
    params = [p for p in module.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    common = _directions(saved, repeats, norm, generator) if common_directions else None

    def error() -> float:
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        value = float(loss(out, y))
        return value if np.isfinite(value) else np.inf

    rows = []
    try:
        for beta in betas:
            if beta == 0:
                rows.append([error()] * repeats)
                continue
            draws = common or _directions(saved, repeats, norm, generator)
            row = []
            for draw in draws:
                for p, p0, v in zip(params, saved, draw, strict=True):
                    p.copy_(p0 + beta * v.to(p0.dtype).to(p0.device))
                row.append(error())
            rows.append(row)
    finally:
        for p, p0 in zip(params, saved, strict=True):
            p.copy_(p0)
    errors = np.asarray(rows, dtype=float).reshape(len(rows), repeats)
    error_max = errors.max(axis=1) if len(rows) else np.zeros(0)
    return {
        "beta": np.asarray(betas, dtype=float),
        "errors": errors,
        "error": error_max,
        "monotone": np.asarray(monotone_envelope(error_max), dtype=float),
    }
