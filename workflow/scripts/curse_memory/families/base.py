"""What the rest of the code asks of a model family (method §6), with the defaults of a
family that has no recurrence matrix, no grid axes and nothing special under perturbation.

A family is an object (usually a subclass of ``Family``) with:

    name            its name in result paths and tables (``NAME_PATTERN``)
    batch_key       a raw parameter that is a matrix in one student: a leading dim r on it
                    marks r packed copies
    init(cfg, generator) -> dict of raw parameters, drawn in float64
    forward(params, x, cfg, raw=False, maps=None, kernel=None) -> yhat
                    the forward map on raw parameters, unbatched (x (b, t, d) -> (b, t, o))
                    or with a leading dim r of copies on every tensor (-> (r, b, t, o));
                    x may be (r, b, t, d), one batch per copy

and, optionally (the defaults below), its grid axes, eigenvalues or moduli, perturbation
masks, projection, chunking size and display name. Torch-free: the families' modules
import torch lazily (``_lazy``), so that the declarations load without it.
"""

from __future__ import annotations

from collections.abc import Mapping

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a family's name (a path component, a wildcard value)
REQUIRED = ("name", "batch_key", "init", "forward")  # what a family must define


def check_choice(key: str, value, allowed) -> None:
    """Raise a ValueError naming ``key`` and the allowed values when ``value`` is not one."""
    if value not in allowed:
        raise ValueError(f"unknown {key} {value!r}; allowed: {', '.join(map(str, allowed))}")


def any_param(params: Mapping):
    """One of the parameters: for their dtype and device (all share them)."""
    return next(iter(params.values()))


class Family:
    """Base of the model families: the defaults of a family without grid axes."""

    name: str = ""
    display_name: str = ""  # in tables (the reference's table of families); default: name
    axes: bool = False  # whether structure, parameterisation and activation apply
    # stable by construction: no raw parameter makes the recurrence unstable (lru's
    # exp-exp map), so the theory expects stable approximation on every target
    stable_by_construction: bool = False
    batch_key: str = ""

    def init(self, cfg, generator=None) -> dict:
        raise NotImplementedError

    def forward(self, params, x, cfg, raw=False, maps=None, kernel=None):
        raise NotImplementedError

    def convolution(self, cfg) -> bool:
        """Whether the forward pass is a convolution (no time loop over hidden states)."""
        return False

    def step_values(self, cfg) -> int:
        """Values per (copy, sequence, step) of the forward pass's largest tensor: the
        hidden states of a time loop, the outputs of a convolution (perturbation chunking)."""
        return cfg.d_out if self.convolution(cfg) else cfg.width

    def recurrence(self, params, cfg, raw=False, maps=None):
        raise ValueError(f"family {cfg.family!r} has no recurrence matrix A")

    def eigenvalues(self, params, cfg, raw=True, maps=None):
        """Real parts of the recurrence's eigenvalues (..., m), Euler-stable iff all in
        (0, 2/dt); None: no fixed recurrence matrix."""
        return None

    def modulus(self, params):
        """|lambda_j| of a complex diagonal recurrence (..., m), or None."""
        return None

    def perturbed_masks(self, params, cfg, masks: dict) -> dict:
        """The raw entries a perturbation moves (``perturbation.perturbed_masks``): name ->
        None (every entry) or a 0/1 mask; a family drops or masks redundant ones."""
        return masks

    def project_(self, params, cfg) -> None:
        """Project the raw parameters (in place) so that evaluation equals training."""

    def reference_row(self, structure: str) -> str:
        """The row of the reference's table of families this family's students belong to."""
        return self.display_name or self.name

    def __repr__(self) -> str:
        return f"<family {self.name}>"
