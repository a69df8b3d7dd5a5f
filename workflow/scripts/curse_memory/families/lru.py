"""lru (Orvieto et al. 2023, arXiv 2303.06349; method §6): complex diagonal
h_{k+1} = lambda * h_k + gamma * (B x_k), yhat_k = Re(C h_{k+1}) + D x_k, with
lambda_j = exp(-exp(nu_j) + i exp(theta_j)) and gamma_j = sqrt(1 - |lambda_j|^2).
Raw parameters nu, theta, B_re, B_im, C_re, C_im, D. The exp-exp map keeps |lambda| < 1
for every raw nu: a stable reparameterisation by construction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._lazy import F, torch
from .base import Family

if TYPE_CHECKING:
    from torch import Tensor


class LRU(Family):
    name = "lru"
    display_name = "linear recurrent unit"
    stable_by_construction = True
    batch_key = "B_re"

    def init(self, cfg, generator=None) -> dict:
        """Decays as the rnn's eigenvalues: a_j ~ U[eig_init] and exp(nu_j) = dt a_j, so
        |lambda_j| = exp(-dt a_j); phases exp(theta_j) ~ U[0.001, pi/10].
        B_re, B_im ~ N(0, 1/(2d)) (complex B of variance 1/d per entry, as the LRU paper);
        C_re, C_im ~ N(0, 1/(2m)) (complex C of variance 1/m per entry, the scale of the
        rnn's c ~ N(0, 1/m): with gamma's normalisation a state has E|h_j|^2 ~ 1 on white
        unit input, so Re(C h) starts at variance about 1/2); D ~ N(0, 1/d).
        """
        m, d, o = cfg.width, cfg.d_in, cfg.d_out
        f64 = torch.float64
        lo, hi = cfg.eig_init
        a = lo + (hi - lo) * torch.rand(m, generator=generator, dtype=f64)
        phase = 0.001 + (math.pi / 10 - 0.001) * torch.rand(m, generator=generator, dtype=f64)
        params = {"nu": torch.log(cfg.dt * a), "theta": torch.log(phase)}
        for name in ("B_re", "B_im"):
            params[name] = torch.randn(m, d, generator=generator, dtype=f64) / math.sqrt(2 * d)
        for name in ("C_re", "C_im"):
            params[name] = torch.randn(o, m, generator=generator, dtype=f64) / math.sqrt(2 * m)
        params["D"] = torch.randn(o, d, generator=generator, dtype=f64) / math.sqrt(d)
        return params

    def convolution(self, cfg) -> bool:
        return True

    def step_values(self, cfg) -> int:
        """Its FFT has about 2T complex frequencies: 2o values a step."""
        return 2 * cfg.d_out

    def eigenvalues(self, params, cfg, raw=True, maps=None):
        """The decay rates a_j = (1 - |lambda_j|) / dt (..., m), so that 1 - dt a_j =
        |lambda_j| is the rnn's diagonal multiplier 1 - dt a_j: an eigenvalue below 0 would
        be |lambda| > 1 and one above 2/dt |lambda| < -1; the exp-exp map allows neither
        (a_j in [0, 1/dt], exactly 0 only when exp(nu_j) underflows)."""
        return -torch.expm1(-torch.exp(params["nu"])) / cfg.dt

    def modulus(self, params):
        return lru_modulus(params)

    def forward(self, params, x, cfg, raw=False, maps=None, kernel=None):
        """yhat_k = sum_{j<=k} K_j x_{k-j} + D x_k (the recurrence, unrolled exactly)."""
        y = causal_convolution(lru_kernel(params, x.shape[-2]), x)
        D = params["D"]
        if D.dim() == 2:
            return y + F.linear(x, D)
        if x.dim() == 4:
            return y + torch.einsum("rbtd,rod->rbto", x, D)
        return y + torch.einsum("btd,rod->rbto", x, D)


def lru_modulus(params: Mapping[str, Tensor]) -> Tensor:
    """|lambda_j| = exp(-exp(nu_j)) of an lru, (..., m): below 1 for every finite nu (in
    floating point it rounds to 1 once exp(nu) is below the unit round-off)."""
    return torch.exp(-torch.exp(params["nu"]))


def lru_kernel(params: Mapping[str, Tensor], T: int) -> Tensor:
    """Kernel K_j = Re(C diag(gamma lambda^j) B), j = 0..T-1, of an lru: ([r,] T, o, d).

    Real arithmetic with closed-form powers: |lambda|^j = exp(-j exp(nu)), phase j exp(theta),
    so that it is exact at long horizons too (no repeated products).
    """
    rate, phase = torch.exp(params["nu"]), torch.exp(params["theta"])  # ([r,] m)
    j = torch.arange(1, T, dtype=rate.dtype, device=rate.device)[:, None]  # (T-1, 1)
    modulus = torch.exp(-j * rate.unsqueeze(-2))  # ([r,] T-1, m); j = 0 apart: 0 * inf
    angle = j * phase.unsqueeze(-2)
    gamma = torch.sqrt(-torch.expm1(-2 * rate)).unsqueeze(-2)  # sqrt(1 - |lambda|^2)
    first = torch.ones_like(gamma)
    re = gamma * torch.cat([first, modulus * torch.cos(angle)], dim=-2)  # ([r,] T, m)
    im = gamma * torch.cat([torch.zeros_like(first), modulus * torch.sin(angle)], dim=-2)
    Br, Bi = params["B_re"].unsqueeze(-3), params["B_im"].unsqueeze(-3)  # ([r,] 1, m, d)
    Cr, Ci = params["C_re"].unsqueeze(-1), params["C_im"].unsqueeze(-1)  # ([r,] o, m, 1)
    # Re((Cr + i Ci) diag(re + i im) (Br + i Bi)) = C diag(re) P - C diag(im) Q with
    P = Cr * Br - Ci * Bi  # ([r,] o, m, d)
    Q = Cr * Bi + Ci * Br
    return torch.einsum("...jn,...ond->...jod", re, P) - torch.einsum("...jn,...ond->...jod", im, Q)


def _fft_length(n: int) -> int:
    """Smallest even 5-smooth integer >= n (a fast FFT size)."""
    n += n % 2
    while True:
        k = n
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return n
        n += 2


def causal_convolution(K: Tensor, x: Tensor) -> Tensor:
    """y_k = sum_{j=0..k} K_j x_{k-j} by FFT along time, zero-padded to >= 2T (no wrap).

    K ([r,] T, o, d); x (b, T, d) shared, or (r, b, T, d) one batch per copy.
    Returns ([r,] b, T, o).
    """
    T = x.shape[-2]
    n = _fft_length(2 * T)
    Kf = torch.fft.rfft(K, n=n, dim=-3)  # ([r,] F, o, d)
    xf = torch.fft.rfft(x, n=n, dim=-2)  # ([r,] b, F, d)
    if x.dim() == 4:
        yf = torch.einsum("rfod,rbfd->rbfo", Kf, xf)
    else:
        yf = torch.einsum("...fod,bfd->...bfo", Kf, xf)
    return torch.fft.irfft(yf, n=n, dim=-2)[..., :T, :]
