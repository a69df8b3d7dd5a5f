r"""curse_memory: the shared maths of the curse-of-memory workflow.

References
----------
- S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear Recurrent Neural
  Networks*, ICLR 2024, arXiv:2305.19190 (the theorem and the perturbation experiments).
- S. Wang, Q. Li, *StableSSM*, arXiv:2311.14495 (the "best" reparameterisation).

Equations (written out in ``docs/method.md``)
---------------------------------------
Targets (``targets``): a linear functional of the input sequence,

    y_k = dt * sum_{j=0..k} rho(j dt) x_{k-j},

computed by FFT convolution, or a nonlinear one (a readout ``phi(z_k)`` of such a ``z``, or
a fixed random stable tanh RNN).

Students (``model``): the residual RNN, forward Euler for dh/dt = sigma(W h + U x + b),

    h_0 = 0,   h_{k+1} = h_k + dt * sigma(U x_k + b - A h_k),   yhat_k = c h_{k+1} + c_0,

with A = diag(f(w)), P diag(f(w)) P^T or a free matrix, and f one of the
parameterisations direct (relu), exp, softplus, best (1 / (w^2 + eps)).

Perturbation stability (``perturbation``): E_m(beta) = max over draws of the test MSE of the
student whose *raw* parameters are moved by a perturbation of size beta, made monotone in
beta (``curves``, with no torch: the blow-up and approximation-lost radii and the crossing
points of successive widths).

Memory function (``memory``): for Heaviside inputs u^x_k = x,

    M(t_k) = max_{x in S} |y_{k+1} - y_k| / dt / (|x|_inf + 1),

and a fit of its tail to exp(-lambda t) against (1 + t)^(-p).

Shape glossary
--------------
    r  perturbed copies of one model (the leading dim of batched parameters)
    b  sequences in a batch          t  time steps (T)
    m  hidden width                  d  input dimension     o  output dimension
"""

import atexit
import gc
import importlib

# Every job's interpreter exits faster when the objects alive at exit (the module state of
# torch, pandas and matplotlib: hundreds of thousands of objects) are frozen first, so that
# the final collections skip them: measured 0.85 s -> 0.25 s per job with torch loaded.
atexit.register(gc.freeze)

# Submodule of every public name. Imports are lazy, so the figure rules (whose
# environment has no torch) can import ``curse_memory.plotting`` alone.
_EXPORTS = {
    "analysis": ["claims_table", "crossing_table", "radius_table", "slope_table"],
    "memory": ["decay_fit", "heaviside_inputs", "memory_function", "memory_tables"],
    "model": [
        "ACTIVATIONS",
        "PARAMETERISATIONS",
        "STRUCTURES",
        "StudentConfig",
        "StudentRNN",
        "load_student",
        "read_checkpoint",
        "retyped",
        "save_student",
        "student_forward",
    ],
    "curves": [
        "approximation_lost_radius",
        "crossing_point",
        "monotone_envelope",
        "stability_radius",
    ],
    "perturbation": ["beta_grid", "draw_perturbations", "perturbation_sweep"],
    "targets": [
        "KERNELS",
        "TARGET_KINDS",
        "TargetSpec",
        "kernel",
        "linear_functional",
        "make_target",
    ],
    "training": ["TrainConfig", "evaluate", "resolve_device", "train_pack", "train_student"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
