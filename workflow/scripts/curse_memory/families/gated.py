"""The gated cells of method §6, lstm and gru: torch's fused LSTM / GRU layer (one layer,
h_0 = 0) with a linear readout yhat_k = c h_{k+1} + c_0. Raw parameters weight_ih,
weight_hh, bias_ih, bias_hh (torch's gate row layout), c, c0; no structure,
parameterisation or activation applies."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._lazy import F, torch
from .base import Family

if TYPE_CHECKING:
    from torch import Tensor

# r copies run as one call of torch's fused cell with block-diagonal weights (hidden r*m,
# input r*d) while that is cheap: at most PACK_WIDTH hidden units and PACK_AREA / m^2
# copies per call, so small widths pack many copies and m >= 56 runs copy by copy.
# Measured on a shared 2-core CPU (float64, b=128, T=100, forward + backward, d=1): 12
# copies of m=14 in one call of width 168 took 0.38-0.53 s against 0.61-0.90 s for 12
# calls; 24 copies of m=8: 0.43-0.51 s against 0.66-1.05 s; m=32 gained little at 2 copies
# a call (0.94-0.99 s vs 1.06-1.14 s) and lost at 4 (1.24 s); m=64 lost at 2 (1.12 vs 1.03 s).
# On an H200 (cudnn) the same 12 copies of m=14 took 6.4-6.8 ms in one call against 64 ms in
# 12 calls (float64), 4.4 ms against 21 ms (float32).
PACK_WIDTH = 192
PACK_AREA = 3072
_GATED_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class Gated(Family):
    """A gated cell of ``gates`` gate blocks; subclasses name torch's fused layer."""

    gates = 0
    batch_key = "weight_ih"

    def layer(self, x: Tensor, h0: Tensor, weights: list, train: bool) -> Tensor:
        """torch's fused layer: hidden states (b, T, H) from h_0 (and c_0) = ``h0``."""
        raise NotImplementedError

    def init(self, cfg, generator=None) -> dict:
        """torch.nn.LSTM / GRU's weights (input d, hidden m, gate rows in torch's order)
        drawn U(-1/sqrt(m), 1/sqrt(m)) as torch does, but from ``generator``; then the
        readout c ~ N(0, 1/m) and c0 = 0."""
        m, d, o = cfg.width, cfg.d_in, cfg.d_out
        f64, rows, bound = torch.float64, self.gates * cfg.width, 1 / math.sqrt(cfg.width)
        params = {}
        shapes = {"weight_ih": (rows, d), "weight_hh": (rows, m), "bias_ih": rows, "bias_hh": rows}
        for name, shape in shapes.items():
            params[name] = (2 * torch.rand(shape, generator=generator, dtype=f64) - 1) * bound
        params["c"] = torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(m)
        params["c0"] = torch.zeros(o, dtype=f64)
        return params

    def states(self, weights: Sequence[Tensor], x: Tensor) -> Tensor:
        """Hidden states h_1..h_T (b, T, H) of the fused layer, h_0 = c_0 = 0."""
        h0 = x.new_zeros(1, x.shape[0], weights[1].shape[-1])
        train = torch.is_grad_enabled()  # cudnn's backward needs its training mode
        with warnings.catch_warnings():  # cudnn copies the (rebuilt) weights into one buffer
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
            return self.layer(x, h0, list(weights), train)

    def forward(self, params, x, cfg, raw=False, maps=None, kernel=None):
        """yhat_k = c h_{k+1} + c0 (torch's fused implementation)."""
        c, c0 = params["c"], params["c0"]
        if params[self.batch_key].dim() == 2:  # one student
            return F.linear(self.states([params[k] for k in _GATED_NAMES], x), c, c0)
        r, m, G = params[self.batch_key].shape[0], cfg.width, self.gates
        group = max(1, min(r, PACK_WIDTH // m, PACK_AREA // (m * m)))  # copies per call
        outputs = []
        for lo in range(0, r, group):
            part = slice(lo, min(r, lo + group))
            xs = x[part] if x.dim() == 4 else x.unsqueeze(0)  # ([k|1], b, t, d)
            if part.stop - lo == 1:
                weights = [params[name][lo] for name in _GATED_NAMES]
                states = self.states(weights, xs[0]).unsqueeze(-2)  # (b, t, 1, m)
            else:
                k = part.stop - lo
                w_ih, w_hh = (_block_diagonal(params[n][part], G) for n in _GATED_NAMES[:2])
                b_ih, b_hh = (
                    params[n][part].reshape(k, G, m).transpose(0, 1).reshape(-1)
                    for n in _GATED_NAMES[2:]
                )
                xs = xs.expand(k, *xs.shape[1:]).permute(1, 2, 0, 3)  # (b, t, k, d)
                xin = xs.reshape(*xs.shape[:2], -1)  # copy i reads features i*d..(i+1)*d
                states = self.states([w_ih, w_hh, b_ih, b_hh], xin)
                states = states.reshape(*states.shape[:2], k, m)  # (b, t, k, m)
            y = torch.einsum("btkm,kom->kbto", states, c[part])
            outputs.append(y + c0[part, None, None, :])
        return torch.cat(outputs)


def _block_diagonal(w: Tensor, gates: int) -> Tensor:
    """(k, gates*m, n) weights of k copies -> (gates*k*m, k*n): gate g's rows of copy i
    at rows g*k*m + i*m.., reading only copy i's columns i*n..(i+1)*n."""
    k, rows, n = w.shape
    m = rows // gates
    eye = torch.eye(k, dtype=w.dtype, device=w.device)[:, None, None, :, None]
    blocks = w.reshape(k, gates, m, 1, n) * eye  # (k, G, m, k, n), zero off the diagonal
    return blocks.transpose(0, 1).reshape(gates * k * m, k * n)
