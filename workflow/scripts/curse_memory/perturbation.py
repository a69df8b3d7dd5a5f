"""Perturbation stability (method §3): E_m(beta) under perturbations of the raw parameters.

Every perturbation moves the *raw* parameters. The R draws of one beta are evaluated
together: the parameters get a leading dim r and one forward pass covers all copies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from . import families
from .model import (
    StudentConfig,
    StudentRNN,
    any_param,
    check_choice,
    copies,
    eigenvalues,
    student_forward,
)

NORMS = ("inf", "l2")


def per_copy(values: Tensor, like: Tensor) -> Tensor:
    """``values`` (r,), one per copy, shaped to broadcast over ``like`` (r, *shape)."""
    return values.view(-1, *[1] * (like.dim() - 1))


def beta_grid(beta_min: float = 1e-3, step: float = 0.5, n: int = 21) -> list[float]:
    """{0} U {beta_min * 2^(i*step) : i = 0..n-1} (reference: 1e-3, 0.5, 21 -> up to ~1)."""
    return [0.0] + [beta_min * 2 ** (i * step) for i in range(n)]


def perturbed_masks(
    params: Mapping[str, Tensor],
    cfg: StudentConfig | None = None,
    tensors: Sequence[str] | None = None,
) -> dict[str, Tensor | None]:
    """The raw entries a perturbation moves: name -> None (every entry) or a 0/1 mask of the
    tensor's shape; a tensor not named is left alone.

    ``tensors`` restricts the perturbation to the named tensors (default: all); the
    family (``Family.perturbed_masks``) then drops or masks redundant entries. lstm and
    gru carry two biases whose sum is all that enters a gate (torch's ``bias_ih`` +
    ``bias_hh``): one bias per gate is perturbed, as the rnn's single b, so the bias noise
    of the families is comparable. lstm: ``bias_ih`` only; gru: ``bias_ih`` and the rows
    of ``bias_hh`` of its candidate gate n (torch's gate order r, z, n), the one bias that
    is not redundant (it is scaled by the reset gate r).
    """
    names = list(params) if tensors is None else list(tensors)
    unknown = sorted(set(names) - set(params))
    if unknown:
        raise ValueError(f"unknown parameter tensors {unknown}; allowed: {', '.join(params)}")
    masks: dict[str, Tensor | None] = dict.fromkeys(names)
    if cfg is not None:
        masks = families.get(cfg.family).perturbed_masks(params, cfg, masks)
    return masks


def unit_directions(
    params: Mapping[str, Tensor],
    repeats: int,
    norm: str,
    generator: torch.Generator,
    masks: Mapping[str, Tensor | None] | None = None,
) -> dict[str, Tensor]:
    """R Gaussian directions of size exactly 1, float64 (r, *shape) for every tensor of
    ``params`` (zero where ``masks`` leaves it alone); ``beta *`` a direction is a draw of
    size beta. Noise is drawn for every tensor in order whatever the masks, so a draw of
    the other tensors does not depend on them.
    """
    check_choice("perturbation norm", norm, NORMS)
    noise = {
        k: torch.randn((repeats, *v.shape), generator=generator, dtype=torch.float64)
        for k, v in params.items()
    }
    masks = dict.fromkeys(params) if masks is None else masks
    for k in noise:
        if k not in masks:
            noise[k].zero_()
        elif masks[k] is not None:
            noise[k] *= masks[k].to(noise[k])
    moved = [k for k in noise if k in masks]
    if norm == "inf":
        for k in moved:
            v = noise[k]
            peak = v.abs().amax(dim=tuple(range(1, v.dim())), keepdim=True)
            noise[k] = v / peak
    else:
        total = torch.sqrt(sum(noise[k].pow(2).flatten(1).sum(1) for k in moved))  # (r,)
        for k in moved:
            noise[k] = noise[k] / per_copy(total, noise[k])
    return noise


def scaled(directions: Mapping[str, Tensor], beta: float, like: Mapping[str, Tensor]):
    """beta times the directions, in the dtype and device of the parameters ``like``."""
    return {k: (v * beta).to(like[k].dtype).to(like[k].device) for k, v in directions.items()}


def draw_perturbations(
    params: Mapping[str, Tensor],
    beta: float,
    repeats: int,
    norm: str,
    generator: torch.Generator,
    masks: Mapping[str, Tensor | None] | None = None,
) -> dict[str, Tensor]:
    """R Gaussian perturbations of the raw parameters, each of size exactly beta.

    ``inf``: every tensor of every draw is rescaled to max-abs beta (the reference code).
    ``l2``: every draw has Euclidean norm beta over all parameters (the paper's definition).
    ``masks`` (see ``perturbed_masks``) restricts the entries moved. Returns tensors
    (r, *shape), in the parameters' order, dtype and device.
    """
    return scaled(unit_directions(params, repeats, norm, generator, masks), beta, params)


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
    per_step = families.get(cfg.family).step_values(cfg)  # values of a (copy, sequence, step)
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


def _copy_groups(r: int, n: int, T: int, cfg: StudentConfig, max_elements: int | None, cuda: bool):
    """(copies per pass, sequences per pass) of ``batched_mse``'s chunking."""
    if max_elements is None:
        max_elements = 2**26 if cuda else 2**21
    per_step = families.get(cfg.family).step_values(cfg)
    pairs = max(1, max_elements // (T * per_step))
    group = max(1, min(r, pairs // n))
    return group, max(1, min(n, pairs // group))


def mse_and_gradient(
    params: Mapping[str, Tensor],
    delta: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    cfg: StudentConfig,
    max_elements: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Test MSE (r,) of the r copies ``params + delta`` and its gradient with respect to
    each delta (r, *shape), by autograd through ``student_forward`` (raw=True).

    ``params`` are one student's raw parameters; ``delta`` holds perturbations of some of
    them (leading dim r); the others stay as they are. Chunked as ``batched_mse``. A copy
    whose error is not finite has error inf and gradient NaN; it does not disturb the
    others (their errors and gradients do not mix).
    """
    r = any_param(delta).shape[0]
    n, T, _ = x.shape
    group, chunk = _copy_groups(r, n, T, cfg, max_elements, x.is_cuda)
    total = torch.zeros(r, dtype=torch.float64, device=x.device)
    grads = {k: torch.zeros_like(v) for k, v in delta.items()}
    for first in range(0, r, group):
        size = min(group, r - first)
        for lo in range(0, n, chunk):
            leaves = {
                k: v[first : first + size].detach().requires_grad_() for k, v in delta.items()
            }
            with torch.enable_grad():
                if size == 1:  # unbatched form, as batched_mse
                    part = {k: v + leaves[k][0] if k in leaves else v for k, v in params.items()}
                else:
                    part = {
                        k: v.unsqueeze(0) + leaves[k]
                        if k in leaves
                        else v.unsqueeze(0).expand(size, *v.shape).contiguous()
                        for k, v in params.items()
                    }
                yhat = student_forward(part, x[lo : lo + chunk], cfg, raw=True)
                err = (yhat - y[lo : lo + chunk].to(yhat.dtype)).pow(2).reshape(size, -1).sum(1)
                finite = torch.isfinite(err)
                torch.where(finite, err, torch.zeros_like(err)).sum().backward()
            total[first : first + size] += err.detach().to(torch.float64)
            for k, leaf in leaves.items():
                g = leaf.grad
                bad = ~per_copy(finite, g)
                grads[k][first : first + size] += torch.where(bad, math.nan, g)
    mse = total / y.numel()
    return torch.where(torch.isfinite(mse), mse, torch.full_like(mse, math.inf)), grads


def _step(delta, grads, beta, norm, step_size, masks):
    """One projected ascent step of every copy (in place): sign steps clipped to the
    per-tensor inf-ball, or normalised steps projected onto the l2 ball, both of length
    ``step_size * beta``; entries outside ``masks`` stay 0."""
    eta = step_size * beta
    if norm == "inf":
        for k, d in delta.items():
            move = torch.sign(grads[k])
            if masks[k] is not None:
                move = move * masks[k].to(move)
            d.add_(move, alpha=eta).clamp_(-beta, beta)
        return
    moves = {k: g if masks[k] is None else g * masks[k].to(g) for k, g in grads.items()}
    gnorm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in moves.values()))  # (r,)
    gnorm = torch.where(gnorm > 0, gnorm, torch.ones_like(gnorm))
    for k, d in delta.items():
        d.add_(eta * moves[k] / per_copy(gnorm, d))
    size = torch.sqrt(sum(d.pow(2).flatten(1).sum(1) for d in delta.values()))
    shrink = torch.clamp(beta / size, max=1.0)  # onto the ball of radius beta
    for d in delta.values():
        d.mul_(per_copy(shrink, d).to(d))


def ascend(
    params: Mapping[str, Tensor],
    start: Mapping[str, Tensor],
    beta: float,
    norm: str,
    x: Tensor,
    y: Tensor,
    cfg: StudentConfig,
    steps: int = 20,
    step_size: float = 0.1,
    masks: Mapping[str, Tensor | None] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Projected gradient ascent of the test MSE inside the beta-ball (method §3, the
    supremum), from each draw of ``start`` ((r, *shape) perturbations of size beta).

    inf: ``steps`` sign-gradient steps of ``step_size * beta``, each tensor clipped to
    [-beta, beta] (the per-tensor inf-ball of the sampling); l2: normalised gradient steps
    of ``step_size * beta`` projected onto the l2 ball of radius beta over all perturbed
    entries. Only the entries of ``masks`` (``perturbed_masks``) move. Returns each draw's
    largest error over its path, its start included (so never below the sampled draw),
    and the perturbation where it was reached. A draw whose error is not finite ends its
    ascent and reads inf; one whose gradient is not finite ends it with its best error.
    """
    check_choice("perturbation norm", norm, NORMS)
    masks = dict.fromkeys(params) if masks is None else masks
    names = [k for k in params if k in masks]
    delta = {k: start[k].detach().clone() for k in names}
    params = {k: v.detach() for k, v in params.items()}
    r = any_param(delta).shape[0]
    best_error = torch.full((r,), -math.inf, dtype=torch.float64, device=x.device)
    best = {k: v.clone() for k, v in delta.items()}
    active = torch.ones(r, dtype=torch.bool, device=x.device)
    for step in range(steps + 1):
        idx = active.nonzero().flatten()
        if idx.numel() == 0:
            break
        current = {k: v[idx] for k, v in delta.items()}
        if step < steps:
            errors, grads = mse_and_gradient(params, current, x, y, cfg)
        else:  # the last point needs no gradient
            with torch.no_grad():
                drawn = {
                    k: params[k].unsqueeze(0) + current[k]
                    if k in current
                    else params[k].unsqueeze(0).expand(idx.numel(), *params[k].shape).contiguous()
                    for k in params
                }
                errors = batched_mse(drawn, x, y, cfg)
            grads = None
        better = errors > best_error[idx]
        best_error[idx] = torch.where(better, errors, best_error[idx])
        for k in names:
            best[k][idx[better]] = current[k][better]
        ended = ~torch.isfinite(errors)
        if grads is None:
            break
        ended |= torch.stack([~torch.isfinite(g).flatten(1).all(1) for g in grads.values()]).any(0)
        go = ~ended
        with torch.no_grad():
            moving = {k: v[go] for k, v in current.items()}
            _step(moving, {k: g[go] for k, g in grads.items()}, beta, norm, step_size, masks)
            for k in names:
                delta[k][idx[go]] = moving[k]
        active[idx[ended]] = False
    return best_error, best


METHODS = ("sample", "ascent")


def perturbation_sweep(
    model: StudentRNN,
    x: Tensor,
    y: Tensor,
    betas: Sequence[float],
    repeats: int,
    norm: str,
    generator: torch.Generator,
    batched: bool = True,
    method: str = "sample",
    steps: int = 20,
    step_size: float = 0.1,
    tensors: Sequence[str] | None = None,
) -> list[dict]:
    """Errors of ``model`` under perturbations of each size in ``betas`` (method §3).

    The R directions are drawn once (``unit_directions``) and scaled to each beta (common
    random directions, as the reference code): draw i at beta is beta times direction i,
    so every draw gives a curve E_i(beta). ``method="ascent"`` starts projected gradient
    ascent (``ascend``) from every draw and keeps, per draw, the larger of its sampled
    error and its ascent's best (``errors``; the sampled ones are ``errors_sampled``).
    ``tensors`` restricts the perturbed tensors (default: all; see ``perturbed_masks``).

    One row per beta: the max error over the draws (``error``, not yet made monotone),
    all draws' errors, and how many draws diverged (non-finite error), pushed an
    eigenvalue of A below 0, or pushed one above the Euler bound 2/dt (at the perturbation
    of each draw's error). For an lru the
    eigenvalues are its decay rates (1 - |lambda|) / dt (see ``model.eigenvalues``: neither
    bound can be crossed) and ``max_abs_lambda`` is the largest |lambda_j| over the draws
    (None for the other families); lstm and gru have no recurrence matrix, their two
    eigenvalue counts are None. beta = 0 is evaluated once. ``batched=False`` evaluates
    the same draws one by one.
    """
    check_choice("perturbation method", method, METHODS)
    cfg = model.config
    params = {k: v.detach() for k, v in model.raw_params().items()}
    device = any_param(params).device
    x, y = x.to(device, cfg.torch_dtype), y.to(device)
    masks = perturbed_masks(params, cfg, tensors)
    directions = None
    rows = []
    for beta in betas:
        sampled = None
        if beta == 0:
            drawn = {k: v.unsqueeze(0) for k, v in params.items()}
        else:
            if directions is None:  # drawn once, at the first beta > 0
                directions = unit_directions(params, repeats, norm, generator, masks)
            delta = scaled(directions, beta, params)
            drawn = {k: params[k].unsqueeze(0) + delta[k] for k in params}
        with torch.no_grad():
            if batched:
                errors = batched_mse(drawn, x, y, cfg)
            else:
                errors = torch.cat(
                    [
                        batched_mse({k: v[i] for k, v in drawn.items()}, x, y, cfg)
                        for i in range(copies(drawn, cfg))
                    ]
                )
        if method == "ascent" and beta != 0:
            sampled = errors
            found, best = ascend(params, delta, beta, norm, x, y, cfg, steps, step_size, masks)
            ascended = found > sampled  # never below the sampled draw
            errors = torch.where(ascended, found, sampled)
            for k, v in best.items():
                drawn[k] = torch.where(
                    per_copy(ascended, drawn[k]), params[k].unsqueeze(0) + v, drawn[k]
                )
        with torch.no_grad():
            eig = eigenvalues(drawn, cfg, raw=True)  # (r, m), or (r, 0): no recurrence matrix
        negative = euler = modulus = None
        if eig.shape[-1]:
            negative = int((eig.min(-1).values < 0).sum())
            euler = int((eig.max(-1).values > 2 / cfg.dt).sum())
        lam = families.get(cfg.family).modulus(drawn)  # |lambda| (lru), or None
        if lam is not None:
            modulus = float(lam.max())
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
        if method == "ascent":
            rows[-1]["errors_sampled"] = (errors if sampled is None else sampled).tolist()
    return rows
