"""Readings of an error curve E_m(beta) (method §3): its monotone envelope, the blow-up and
approximation-lost radii and the crossing points of two widths.

numpy only, without torch: the table and claim jobs import this, not ``perturbation``, and
so skip torch's import (about 3 s a job).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def monotone_envelope(errors: Sequence[float]) -> np.ndarray:
    """E(beta) = max_{beta' <= beta} of the per-beta maxima (NaN counts as divergence)."""
    e = np.asarray(errors, dtype=float)
    return np.maximum.accumulate(np.where(np.isnan(e), np.inf, e))


def stability_radius(
    betas: Sequence[float], envelope: Sequence[float], tau: float
) -> tuple[float, bool]:
    """Blow-up radius beta*(tau): the largest grid beta with E(beta) <= tau.

    Returns (beta_star, censored). When E never exceeds tau on the grid the radius is only
    known to exceed the largest beta: censored=True and beta_star=NaN.
    """
    betas, env = np.asarray(betas, dtype=float), np.asarray(envelope, dtype=float)
    below = env <= tau
    if below.all():
        return math.nan, True
    if not below[0]:
        return 0.0, False
    return float(betas[np.argmin(below) - 1]), False


def crossing_point(
    betas: Sequence[float], envelope_narrow: Sequence[float], envelope_wide: Sequence[float]
) -> tuple[float, str]:
    """Smallest grid beta > 0 where the wider model's E reaches the narrower one's.

    Returns (beta, status): status "crossed"; "never" (no crossing on the grid, beta NaN);
    or "not_monotone" when E_wide(0) >= E_narrow(0), where a crossing means nothing.
    """
    betas = np.asarray(betas, dtype=float)
    narrow, wide = np.asarray(envelope_narrow, float), np.asarray(envelope_wide, float)
    if not wide[0] < narrow[0]:
        return math.nan, "not_monotone"
    hits = np.nonzero((betas > 0) & (wide >= narrow))[0]
    if len(hits) == 0:
        return math.nan, "never"
    return float(betas[hits[0]]), "crossed"


def approximation_lost_radius(
    betas: Sequence[float], envelope: Sequence[float], threshold: float
) -> tuple[float, bool]:
    """Approximation-lost radius: the smallest grid beta with E(beta) > threshold.

    The threshold is ``lost_factor`` times the zero predictor's test error (method §3,
    "Bounded activations"): past it the perturbed model is worse than predicting 0. It is
    the radius that means something for tanh/hardtanh students, which never reach inf.
    Non-finite E (inf, NaN: a diverged draw) counts as exceeding the threshold.

    Returns (beta_lost, censored). When E never exceeds the threshold on the grid the radius
    is only known to exceed the largest beta: censored=True and beta_lost=NaN. When E(0)
    already exceeds it the radius is 0.0 (not censored).
    """
    betas, env = np.asarray(betas, dtype=float), np.asarray(envelope, dtype=float)
    above = ~(env <= threshold)  # NaN compares False: counts as above
    if not above.any():
        return math.nan, True
    return float(betas[np.argmax(above)]), False
