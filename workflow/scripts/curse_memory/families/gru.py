"""gru (method §6): torch's GRU cell, one layer, with a linear readout (``gated``)."""

from __future__ import annotations

from ._lazy import torch
from .gated import Gated


class GRU(Gated):
    name = "gru"
    display_name = "GRU"
    gates = 3  # r, z, n

    def layer(self, x, h0, weights, train):
        return torch.gru(x, h0, weights, True, 1, 0.0, train, False, True)[0]

    def perturbed_masks(self, params, cfg, masks):
        """One bias per gate, as the rnn's single b: ``bias_ih``, and of ``bias_hh`` only
        the rows of the candidate gate n (torch's gate order r, z, n), the one hidden bias
        that is not redundant (it is scaled by the reset gate r)."""
        if "bias_hh" in masks:
            mask = torch.zeros(params["bias_hh"].shape[-1], dtype=torch.float64)
            mask[2 * cfg.width :] = 1.0  # rows r, z, n: only n's hidden bias is not redundant
            masks["bias_hh"] = mask
        return masks
