"""Checks of the initial eigenvalue range (method §2), shared by the config validation of
the workflow (``workflow/rules/common.smk``) and ``StudentConfig``; no torch, so the
Snakefile can import them cheaply."""

from __future__ import annotations

# method §6: the model families, and whether structure, parameterisation and activation
# apply to each (where they do not, paths, tables and configs read "none")
FAMILIES = ("rnn", "ssm", "lru", "lstm", "gru")
AXES_APPLY = {"rnn": True, "ssm": True, "lru": False, "lstm": False, "gru": False}


def eig_init_problem(lo: float, hi: float, dt: float) -> str | None:
    """Why U[lo, hi] is not a valid initial eigenvalue range at step dt, or None."""
    if not 0 < lo <= hi:
        return f"need 0 < lo <= hi, got {[lo, hi]}"
    if dt * hi >= 2:
        return f"dt * hi = {dt * hi:g} breaks the Euler bound dt*a < 2"
    return None


# teacher_transformer: its causal attention costs O(horizon^2) time (memory is bounded: the
# scores are computed in blocks of queries). Measured on one core at the default width 16,
# 2 heads and 8 Heaviside inputs: about 4-5 s at 10,000 steps, so about 2 min here.
TRANSFORMER_MAX_HORIZON = 50_000


def transformer_problem(name: str, spec: dict, horizon: int) -> str | None:
    """Why the target ``name`` (a teacher_transformer spec) cannot run, as an error naming
    its key, or None (also for every other kind). ``horizon`` is memory.horizon."""
    if spec.get("kind") != "teacher_transformer":
        return None
    width, heads = spec.get("transformer_width", 16), spec.get("transformer_heads", 2)
    if width % heads:
        return (
            f"config targets.{name}.transformer_heads: {heads} heads do not divide "
            f"transformer_width {width}"
        )
    if horizon > TRANSFORMER_MAX_HORIZON:
        return (
            f"config memory.horizon: {horizon} steps is above {TRANSFORMER_MAX_HORIZON}, the "
            f"cap for a Transformer target ({name}: its attention costs O(horizon^2) time)"
        )
    return None


def best_reach_problem(hi: float, eps: float) -> str | None:
    """Why ``best`` (a = 1/(w^2 + eps) <= 1/eps) cannot start at eigenvalue hi, or None."""
    if hi >= 1 / eps:
        return f"best reaches at most 1/eps = {1 / eps:.3g} < eig_init hi = {hi}; lower eps or hi"
    return None
