"""The config's torch-free checks and merge order: the initial eigenvalue range (method §2),
shared by the config validation of the workflow (``workflow/rules/common.smk``) and
``StudentConfig``; the cross-key checks that JSON Schema cannot express; and how a study's
overlay is merged over the default config. No torch and no other module of the package at
import, so the Snakefile loads this file on its own, cheaply; ``check_config`` asks the
families' registry (torch-free too) about students.families.

Merge order (later wins): the schema's defaults < ``config/config.yaml`` < the
``--configfile`` overlays, in order < ``--config``. Mappings merge key by key, lists and
other values are replaced; ``targets`` is a set of named targets, and an overlay that names
targets gives the whole set (the default's are dropped).
"""

from __future__ import annotations

import copy


def family_problem(spec: str) -> str | None:
    """Why ``spec`` (an entry of students.families: a built-in name or a plug-in's
    ``package.module:Name``) names no usable family, or None. A plug-in is imported here,
    before any job, so its code runs: a config is trusted like code (docs/method.md §6).
    The registry is torch-free; the package is found on sys.path (the Snakefile puts it
    there), so this file still loads on its own."""
    from curse_memory import families

    return families.problem(spec)


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


def merge_config(default: dict, *overlays: dict) -> dict:
    """The config a run sees: ``overlays`` merged over ``default`` in order (a new dict).

    Mappings merge key by key (Snakemake's own merge of ``--configfile`` over the
    Snakefile's ``configfile:``), lists and other values are replaced, and the overlays'
    ``targets`` (merged among themselves) replace the default's set."""

    def merge(base, over):
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = copy.deepcopy(value)

    config = copy.deepcopy(default)
    targets = {}
    for overlay in overlays:
        merge(config, overlay)
        merge(targets, overlay.get("targets", {}))
    if targets:
        config["targets"] = targets
    return config


def overlay_of(config: dict, default: dict) -> dict:
    """The smallest overlay that ``merge_config(default, overlay)`` turns into ``config``:
    the keys whose values differ, recursively (``targets`` whole, when they differ)."""
    overlay = {}
    for key, value in config.items():
        base = default.get(key)
        if key == "targets" and value != base:
            overlay[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(base, dict):
            sub = overlay_of(value, base)
            if sub:
                overlay[key] = sub
        elif key not in default or value != base:
            overlay[key] = copy.deepcopy(value)
    return overlay


def check_config(config: dict) -> None:
    """Cross-key checks that JSON Schema cannot express; each error names its key.

    ``config`` is a validated config (the schema's defaults filled in)."""
    dt = config["data"]["dt"]
    students = config["students"]
    for spec in students["families"]:
        problem = family_problem(spec)
        if problem:
            raise ValueError(f"config students.families: {problem}")
    lo, hi = students["eig_init"]
    problem = eig_init_problem(lo, hi, dt)
    if problem:
        raise ValueError(f"config students.eig_init: {problem}")
    problem = best_reach_problem(hi, students["eps"])
    if "best" in students["parameterisations"] and problem:
        raise ValueError(f"config students.eps: {problem}")
    train = config["train"]
    if train["monotone_steps"] is not None and train["monotone_steps"] < train["steps"]:
        raise ValueError(
            f"config train.monotone_steps: {train['monotone_steps']} is below train.steps "
            f"({train['steps']}); it is the longer budget of students chasing a target"
        )
    horizons = {spec.get("T", config["data"]["T"]) for spec in config["targets"].values()}
    if "target" in train["pack_by"] and len(horizons) > 1:
        raise ValueError(
            "config train.pack_by: 'target' packs students of different targets into one "
            f"model, which needs one horizon T, but the targets have T in {sorted(horizons)}; "
            "allowed here: [seed] or []"
        )
    memory = config["memory"]
    if memory["fit_from"] >= memory["horizon"] * dt:
        raise ValueError(
            f"config memory.fit_from: {memory['fit_from']} is at or beyond the horizon "
            f"({memory['horizon']} steps x dt = {memory['horizon'] * dt}): every tail fit "
            "would be empty; lower fit_from or raise memory.horizon"
        )
    for name, spec in config["targets"].items():
        params = spec.get("kernel_params", {})
        rates = ("a", "s", "p") if spec.get("kernel", "exp") in ("exp", "pol") else ()
        for key in rates:
            if key in params and not params[key] > 0:
                raise ValueError(
                    f"config targets.{name}.kernel_params.{key}: must be > 0, got "
                    f"{params[key]} (a decaying memory kernel needs a positive rate)"
                )
        t_lo, t_hi = spec.get("teacher_eig", [0.3, 1.0])
        if not t_lo <= t_hi or dt * t_hi >= 2:
            raise ValueError(
                f"config targets.{name}.teacher_eig: need lo <= hi and dt*hi < 2, "
                f"got {[t_lo, t_hi]}"
            )
        problem = transformer_problem(name, spec, memory["horizon"])
        if problem:
            raise ValueError(problem)
        problem = transformer_problem(name, spec, memory["horizon"])
        if problem:
            raise ValueError(problem)
