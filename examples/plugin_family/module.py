"""A gated linear recurrence as a plug-in family of the curse-of-memory workflow:

    h_{k+1} = g * h_k + (1 - g) * (U x_k),   g = sigmoid(w),   yhat_k = c h_{k+1} + c_0

with h_0 = 0, one gate g_j in (0, 1) per unit (a diagonal recurrence that none of the
built-in families is: rnn and ssm are Euler steps of dh/dt, lru is complex with gamma's
normalisation, lstm and gru gate on the input). Raw parameters w, U, c, c0; a perturbation
moves them (every entry). Since sigmoid maps every raw w into (0, 1), no perturbation makes
it unstable: a stable reparameterisation by construction, like the lru.

Named in a config as ``plugin_family.module:GatedLinear`` with this directory's parent
(``examples/``) on PYTHONPATH.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from curse_memory.families import Family


class GatedLinear(Family):
    name = "glr"  # in result paths and tables
    display_name = "gated linear recurrence"
    stable_by_construction = True
    batch_key = "U"  # a matrix (m, d) in one student; (r, m, d) for r packed copies

    def init(self, cfg, generator=None) -> dict:
        """Decay rates a_j ~ U[eig_init] as the rnn's eigenvalues: g_j = exp(-dt a_j);
        U ~ N(0, 1/d), c ~ N(0, 1/m), c0 = 0 (float64)."""
        m, d, o = cfg.width, cfg.d_in, cfg.d_out
        f64 = torch.float64
        lo, hi = cfg.eig_init
        a = lo + (hi - lo) * torch.rand(m, generator=generator, dtype=f64)
        g = torch.exp(-cfg.dt * a)
        return {
            "w": torch.log(g) - torch.log1p(-g),  # sigmoid(w) = g
            "U": torch.randn(m, d, generator=generator, dtype=f64) / math.sqrt(d),
            "c": torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(m),
            "c0": torch.zeros(o, dtype=f64),
        }

    def eigenvalues(self, params, cfg, raw=True, maps=None):
        """Decay rates (1 - g) / dt, as the lru's: 1 - dt a = g in (0, 1)."""
        return (1 - torch.sigmoid(params["w"])) / cfg.dt

    def forward(self, params, x, cfg, raw=False, maps=None, kernel=None):
        """x (b, t, d) or, for r copies, (b, t, d) shared or (r, b, t, d) -> ([r,] b, t, o)."""
        w, U, c, c0 = params["w"], params["U"], params["c"], params["c0"]
        g = torch.sigmoid(w)
        if U.dim() == 2:  # one student
            z = F.linear(x, U)  # (b, t, m)
        else:
            z = torch.einsum("rbtd,rmd->rbtm" if x.dim() == 4 else "btd,rmd->rbtm", x, U)
            g = g.unsqueeze(-2)  # (r, 1, m)
        h = torch.zeros_like(z[..., 0, :])
        states = []
        for k in range(z.shape[-2]):
            h = g * h + (1 - g) * z[..., k, :]
            states.append(h)
        states = torch.stack(states, dim=-2)  # ([r,] b, t, m)
        if U.dim() == 2:
            return F.linear(states, c, c0)
        return torch.einsum("rbtm,rom->rbto", states, c) + c0[:, None, None, :]
