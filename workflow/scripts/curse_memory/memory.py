"""Memory functions (method §4) and the exponential-vs-polynomial fit of their tails.

    M(H)(t) = sup_{x != 0} |d/dt H_t(u^x)| / (|x|_inf + 1),   u^x_k = x for k >= 0,

estimated on a finite set S of Heaviside inputs (amplitudes x directions):

    Mhat(t_k) = max_{x in S} |y_{k+1} - y_k| / dt / (|x|_inf + 1),   t_k = (k + 1) dt.

For a linear target y_k = dt sum_j rho_j x_{k-j} this is |rho(t_k)| |x| / (|x| + 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def heaviside_inputs(T: int, d: int, amplitudes: Sequence[float]) -> np.ndarray:
    """Constant inputs x (n, T, d): every amplitude times every direction +-e_i.

    With d = 1 these are +-amplitude; the inf-norm of each input is its amplitude.
    """
    directions = np.concatenate([np.eye(d), -np.eye(d)])  # (2d, d)
    levels = np.asarray(amplitudes, dtype=float)[:, None, None] * directions[None]  # (A, 2d, d)
    return np.repeat(levels.reshape(-1, 1, d), T, axis=1)


def memory_function(
    fn: Callable[[np.ndarray], np.ndarray],
    T: int,
    d: int,
    dt: float,
    amplitudes: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Estimated memory function of a causal map ``fn``: (n, T, d) -> ([r,] n, T, o).

    A map with a leading dim r (r models evaluated together) gets r memory functions.
    Returns t (T-1,) = dt, 2dt, ... and Mhat(t) ([r,] T-1).
    """
    x = heaviside_inputs(T, d, amplitudes)
    y = np.asarray(fn(x), dtype=float)  # ([r,] n, T, o)
    rate = np.linalg.norm(np.diff(y, axis=-2), axis=-1) / dt  # ([r,] n, T-1)
    scale = np.abs(x[:, 0, :]).max(axis=-1) + 1.0  # |x|_inf + 1
    with np.errstate(invalid="ignore"):
        memory = (rate / scale[:, None]).max(axis=-2)
    return dt * np.arange(1, T), memory


def student_memories(models: Sequence, T: int, amplitudes: Sequence[float]):
    """Memory functions of trained students (``StudentRNN``s): float64 and the time loop
    (the horizon T is long; the convolution path is O(T^2)), one stacked pass over the
    students of each width. Returns t (T-1,) and one Mhat (T-1,) per student, in order."""
    import torch

    from .model import retyped, stack_students, student_forward

    models = [retyped(m, "float64", fast_linear=False) for m in models]
    widths: dict[int, list[int]] = {}  # the students of one width run as one pass
    for i, model in enumerate(models):
        widths.setdefault(model.config.width, []).append(i)
    memories = [None] * len(models)
    for rows in widths.values():
        params, cfg, maps = stack_students([models[i] for i in rows])

        def fn(x, params=params, cfg=cfg, maps=maps):  # (n, T, d) -> (r, n, T, o)
            with torch.no_grad():
                return student_forward(params, torch.as_tensor(x), cfg, maps=maps).numpy()

        t, found = memory_function(fn, T, cfg.d_in, cfg.dt, amplitudes)
        for i, memory in zip(rows, found, strict=True):
            memories[i] = memory
    return t, memories


def decay_fit(t: np.ndarray, memory: np.ndarray, t_min: float = 0.0, floor: float = 1e-10) -> dict:
    """Least-squares fits of the tail: log M = a - lambda t against log M = a - p log(1+t).

    Uses the points with t >= t_min and M above ``floor`` times its maximum (the rest is
    round-off). Returns both rates, both fit qualities (R^2), the number of points and the
    better model as ``decay``: "exponential" or "polynomial"; "non-decaying" when the better
    fit falls by less than a factor 2 over the whole window (a memory that does not fade,
    e.g. a student with a zero eigenvalue); "undetermined" with fewer than 3 points.
    """
    t, memory = np.asarray(t, float), np.asarray(memory, float)
    finite = np.isfinite(memory)
    peak = memory[finite].max() if finite.any() else math.nan
    keep = finite & (t >= t_min) & (memory > floor * peak) & (memory > 0)
    result = {"decay": "undetermined", "rate_exp": math.nan, "rate_pol": math.nan}
    result |= {"fit_exp": math.nan, "fit_pol": math.nan, "n_points": int(keep.sum())}
    if keep.sum() < 3:
        return result
    log_m = np.log(memory[keep])
    for name, feature in (("exp", t[keep]), ("pol", np.log1p(t[keep]))):
        slope, intercept = np.polyfit(feature, log_m, 1)
        residual = log_m - (slope * feature + intercept)
        spread = ((log_m - log_m.mean()) ** 2).sum()
        result[f"rate_{name}"] = float(-slope)
        result[f"fit_{name}"] = float(1 - (residual**2).sum() / spread) if spread > 0 else 1.0
    better = result["fit_exp"] >= result["fit_pol"]
    t0, t1 = t[keep].min(), t[keep].max()
    if better:
        result["decay"], fall = "exponential", result["rate_exp"] * (t1 - t0)
    else:
        result["decay"], fall = "polynomial", result["rate_pol"] * np.log((1 + t1) / (1 + t0))
    if fall < math.log(2):
        result["decay"] = "non-decaying"
    return result


def memory_tables(
    t: np.ndarray,
    memory: np.ndarray,
    labels: dict,
    fit_from: float,
    analytic: Callable[[np.ndarray], np.ndarray] | None = None,
):
    """The memory table (about 200 log-spaced times) and the one-row fit table of one
    memory function; ``labels`` (subject, kind, target) head every row. The tail fit uses
    every time step from ``fit_from`` on."""
    import pandas as pd

    fit = decay_fit(t, memory, t_min=fit_from)
    keep = np.unique(np.geomspace(1, len(t), 200).astype(int) - 1)
    table = pd.DataFrame(labels | {"t": t[keep], "memory": memory[keep]})
    table["analytic"] = analytic(t[keep]) if analytic is not None else np.nan
    return table, pd.DataFrame([labels | fit])
