"""lstm (method §6): torch's LSTM cell, one layer, with a linear readout (``gated``)."""

from __future__ import annotations

from ._lazy import torch
from .gated import Gated


class LSTM(Gated):
    name = "lstm"
    display_name = "LSTM"
    gates = 4  # i, f, g, o

    def layer(self, x, h0, weights, train):
        return torch.lstm(x, (h0, h0), weights, True, 1, 0.0, train, False, True)[0]

    def perturbed_masks(self, params, cfg, masks):
        """One bias per gate, as the rnn's single b: ``bias_ih`` + ``bias_hh`` is all that
        enters a gate, so ``bias_hh`` is left alone."""
        masks.pop("bias_hh", None)
        return masks
