"""Perturbation stability (method §3): E_m(beta) under perturbations of the raw parameters.

Every perturbation moves the *raw* parameters. The R draws of one beta are evaluated
together: the parameters get a leading dim r and one forward pass covers all copies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .model import (
    StudentConfig,
    StudentRNN,
    any_param,
    check_choice,
    copies,
    eigenvalues,
    lru_modulus,
    student_forward,
)

NORMS = ("inf", "l2")


def beta_grid(beta_min: float = 1e-3, step: float = 0.5, n: int = 21) -> list[float]:
    """{0} U {beta_min * 2^(i*step) : i = 0..n-1} (reference: 1e-3, 0.5, 21 -> up to ~1)."""
    return [0.0] + [beta_min * 2 ** (i * step) for i in range(n)]


def draw_perturbations(
    params: Mapping[str, Tensor],
    beta: float,
    repeats: int,
    norm: str,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """R Gaussian perturbations of the raw parameters, each of size exactly beta.

    ``inf``: every tensor of every draw is rescaled to max-abs beta (the reference code).
    ``l2``: every draw has Euclidean norm beta over all parameters (the paper's definition).
    Returns tensors (r, *shape), in the parameters' order, dtype and device.
    """
    check_choice("perturbation norm", norm, NORMS)
    noise = {
        k: torch.randn((repeats, *v.shape), generator=generator, dtype=torch.float64)
        for k, v in params.items()
    }
    if norm == "inf":
        for k, v in noise.items():
            peak = v.abs().amax(dim=tuple(range(1, v.dim())), keepdim=True)
            noise[k] = v / peak * beta
    else:
        total = torch.sqrt(sum(v.pow(2).flatten(1).sum(1) for v in noise.values()))  # (r,)
        for k, v in noise.items():
            noise[k] = v / total.view(-1, *[1] * (v.dim() - 1)) * beta
    return {k: v.to(params[k].dtype).to(params[k].device) for k, v in noise.items()}


@torch.no_grad()
def batched_mse(
    params: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    cfg: StudentConfig,
    max_elements: int | None = None,
) -> Tensor:
    """Test MSE of each copy (r,) of raw parameters, chunked over copies and sequences.

    Unbatched parameters count as one copy. Non-finite errors (a diverging copy) are inf.
    One pass holds at most ``max_elements`` values of its largest tensor, the states
    (copies, b, t, m) of the time loop (rnn, ssm, lstm, gru) or the outputs (copies, b, t, o)
    of a convolution (linear rnn or ssm; lru, whose FFT has about 2T complex frequencies,
    counted as 2o values a step); it takes as few copies as fill that with all n sequences,
    else one copy
    and fewer sequences. On the CPU the default (2**21 values, 8 MB in float32) keeps a
    step's tensors in the L2 cache: larger passes fall out of it and, past glibc's 32 MB
    mmap threshold, are page-faulted in afresh every time. At equal size, a pass over
    one copy beats one over many copies with fewer sequences (a single matrix product
    per step instead of a batch of thin ones). On a GPU the default is 2**26.
    """
    if max_elements is None:
        max_elements = 2**26 if x.is_cuda else 2**21
    r = copies(params, cfg)
    batched = r is not None
    r = r or 1
    n, T, _ = x.shape
    per_step = cfg.d_out if cfg.convolution else cfg.width  # values of a (copy, sequence, step)
    per_step *= 2 if cfg.family == "lru" else 1
    pairs = max(1, max_elements // (T * per_step))
    group = max(1, min(r, pairs // n))  # copies per pass
    chunk = max(1, min(n, pairs // group))  # sequences per pass
    total = torch.zeros(r, dtype=torch.float64, device=x.device)
    for first in range(0, r, group):
        if not batched:
            part = params
        elif group == 1:  # unbatched form: one matrix product per step
            part = {k: v[first] for k, v in params.items()}
        else:
            part = {k: v[first : first + group] for k, v in params.items()}
        size = min(group, r - first)
        for lo in range(0, n, chunk):
            yhat = student_forward(part, x[lo : lo + chunk], cfg, raw=True)  # ([g,] b, t, o)
            err = (yhat - y[lo : lo + chunk].to(yhat.dtype)).pow(2)
            total[first : first + size] += err.reshape(size, -1).sum(1).to(torch.float64)
    mse = total / y.numel()
    return torch.where(torch.isfinite(mse), mse, torch.full_like(mse, math.inf))


@torch.no_grad()
def perturbation_sweep(
    model: StudentRNN,
    x: Tensor,
    y: Tensor,
    betas: Sequence[float],
    repeats: int,
    norm: str,
    generator: torch.Generator,
    batched: bool = True,
) -> list[dict]:
    """Errors of ``model`` under perturbations of each size in ``betas`` (method §3).

    One row per beta: the max error over the draws (``error``, not yet made monotone),
    all draws' errors, and how many draws diverged (non-finite error), pushed an
    eigenvalue of A below 0, or pushed one above the Euler bound 2/dt. For an lru the
    eigenvalues are its decay rates (1 - |lambda|) / dt (see ``model.eigenvalues``: neither
    bound can be crossed) and ``max_abs_lambda`` is the largest |lambda_j| over the draws
    (None for the other families); lstm and gru have no recurrence matrix, their two
    eigenvalue counts are None. beta = 0 is evaluated once. ``batched=False`` evaluates
    the same draws one by one.
    """
    cfg = model.config
    params = {k: v.detach() for k, v in model.raw_params().items()}
    device = any_param(params).device
    x, y = x.to(device, cfg.torch_dtype), y.to(device)
    rows = []
    for beta in betas:
        if beta == 0:
            drawn = {k: v.unsqueeze(0) for k, v in params.items()}
        else:
            delta = draw_perturbations(params, beta, repeats, norm, generator)
            drawn = {k: params[k].unsqueeze(0) + delta[k] for k in params}
        if batched:
            errors = batched_mse(drawn, x, y, cfg)
        else:
            errors = torch.cat(
                [
                    batched_mse({k: v[i] for k, v in drawn.items()}, x, y, cfg)
                    for i in range(copies(drawn, cfg))
                ]
            )
        eig = eigenvalues(drawn, cfg, raw=True)  # (r, m), or (r, 0): no recurrence matrix
        negative = euler = modulus = None
        if eig.shape[-1]:
            negative = int((eig.min(-1).values < 0).sum())
            euler = int((eig.max(-1).values > 2 / cfg.dt).sum())
        if cfg.family == "lru":
            modulus = float(lru_modulus(drawn).max())
        rows.append(
            {
                "beta": float(beta),
                "error": float(errors.max()),
                "errors": errors.tolist(),
                "n_diverged": int((~torch.isfinite(errors)).sum()),
                "n_eig_negative": negative,
                "n_eig_euler": euler,
                "max_abs_lambda": modulus,
            }
        )
    return rows
