"""rnn: the residual RNN of method §2, h_{k+1} = h_k + dt * sigma(U x_k + b - A h_k),
yhat_k = c h_{k+1} + c_0 (the maths in ``residual``)."""

from __future__ import annotations

from .residual import Residual


class RNN(Residual):
    name = "rnn"
    display_name = "RNN"
    ssm = False

    def reference_row(self, structure: str) -> str:
        """The reference's table splits the rnn by its structure."""
        return "diagonal RNN" if structure == "diagonal" else "vanilla RNN"
