"""The registry of model families (method §6): one module per family, one line here.

    get("rnn")                          a built-in family
    get("plugin_family.module:Name")    a family defined outside this repository: the
                                        module is imported and ``Name`` (a class or an
                                        object) registered under its ``name`` on first use
    register(family)                    add a family (a ``Family`` subclass or instance)
    names()                             the registered names, built-ins first

The rest of the code asks the family of a student (``get(cfg.family)``) what it needs
(parameters, forward map, eigenvalues, grid axes, perturbation masks, display name) and
never branches on a family's name. Importing a plug-in runs its code: a config that names
one is trusted like code (docs/method.md §6). Torch-free, as every family's declaration.
"""

from __future__ import annotations

import importlib
import re

from .base import NAME_PATTERN, REQUIRED, Family, any_param, check_choice
from .gru import GRU
from .lru import LRU
from .lstm import LSTM
from .rnn import RNN
from .ssm import SSM

__all__ = ["Family", "any_param", "check_choice", "get", "names", "problem", "register"]

DEFAULT = "rnn"  # the family of a config, checkpoint or table that names none
_REGISTRY: dict[str, Family] = {}  # name -> family
_PLUGINS: dict[str, Family] = {}  # package.module:Name -> family (imported once)


def register(family) -> Family:
    """Add ``family`` (a class, instantiated without arguments, or an instance) under its
    ``name``; returns the instance. A name already taken by another family is an error."""
    if isinstance(family, type):
        family = family()
    missing = [k for k in REQUIRED if not _defines(family, k)]
    if missing:
        raise ValueError(f"family {family!r} lacks {', '.join(missing)}")
    if not re.match(NAME_PATTERN, family.name):
        raise ValueError(f"family name {family.name!r} does not match {NAME_PATTERN}")
    known = _REGISTRY.get(family.name)
    if known is not None and type(known) is not type(family):
        raise ValueError(f"family name {family.name!r} is taken by {known!r}")
    _REGISTRY[family.name] = family
    return family


def _defines(family, key: str) -> bool:
    """Whether ``family`` has ``key``: a non-empty attribute, or a method of its own (not
    the base class's placeholder)."""
    value = getattr(family, key, None)
    if not value:
        return False
    base = getattr(Family, key, None)
    return not callable(base) or getattr(type(family), key, None) is not base


def names() -> tuple[str, ...]:
    """The registered families' names, in registration order (the built-ins first)."""
    return tuple(_REGISTRY)


def is_plugin(spec: str) -> bool:
    """Whether ``spec`` names a family outside the registry, as ``package.module:Name``."""
    return ":" in spec


def get(spec: str) -> Family:
    """The family named ``spec``: a registered name, or ``package.module:Name`` (imported
    and registered on first use). Raises a ValueError that says why it cannot be had."""
    family = _REGISTRY.get(spec) or _PLUGINS.get(spec)
    if family is not None:
        return family
    if not is_plugin(spec):
        allowed = ", ".join(names())
        raise ValueError(f"unknown family {spec!r}; allowed: {allowed}, or package.module:Name")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or the module's own error
        raise ValueError(
            f"family {spec!r}: module {module_name!r} is not importable "
            f"({type(err).__name__}: {err}); is its directory on PYTHONPATH?"
        ) from err
    if not hasattr(module, attr):
        raise ValueError(f"family {spec!r}: module {module_name!r} has no {attr!r}")
    try:
        family = register(getattr(module, attr))
    except (TypeError, ValueError) as err:
        raise ValueError(f"family {spec!r}: {err}") from err
    _PLUGINS[spec] = family  # found again by its spec, without a second import
    return family


def problem(spec: str) -> str | None:
    """Why ``spec`` names no usable family (not importable, a missing method, a bad
    name), or None."""
    try:
        get(spec)
    except ValueError as err:
        return str(err)
    return None


def path_name(spec: str) -> str:
    """The family's name in result paths and tables (a plug-in's ``name``)."""
    return get(spec).name


for _family in (RNN, SSM, LRU, LSTM, GRU):  # the built-ins (method §6)
    register(_family)
BUILTINS = names()
