"""ssm (StableSSM, method §6): h_{k+1} = h_k + dt (U x_k + b - A h_k),
yhat_k = c sigma(h_{k+1}) + c_0 (the maths in ``residual``)."""

from __future__ import annotations

from .residual import Residual


class SSM(Residual):
    name = "ssm"
    display_name = "state-space model"
    ssm = True
