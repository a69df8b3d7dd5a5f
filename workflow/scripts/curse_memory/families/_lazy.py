"""torch, imported on its first use, so that the families' declarations (name, axes,
display name) load without torch: the table and figure rules' environment has none, and
the Snakefile reads the registry before any job."""

from __future__ import annotations

import importlib


class LazyModule:
    """A module imported on the first attribute read; each attribute is then kept on the
    proxy, so that later reads cost what a module attribute costs."""

    def __init__(self, name: str):
        self._lazy_name = name

    def __getattr__(self, attr: str):
        value = getattr(importlib.import_module(self._lazy_name), attr)
        setattr(self, attr, value)
        return value


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
