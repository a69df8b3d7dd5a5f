"""Fused recurrence kernels (numba) for the diagonal rnn and ssm students.

One compiled call runs the whole time loop of r copies, forward or backward, where
``model.DiagonalRecurrence`` issues about 7 tensor ops per forward step and 10 per backward
step. The maths are those of ``DiagonalRecurrence`` (see its docstring), with the ssm too:

    rnn  u_k = U x_k + b - a h_k,  s_k = sigma(u_k),  h_{k+1} = h_k + dt s_k,  y_k = c h_{k+1}
    ssm  u_k = U x_k + b - a h_k,  h_{k+1} = h_k + dt u_k,  s_k = sigma(h_{k+1}),  y_k = c s_k

Layout: copies outermost (each copy's states stay in cache through its time loop), then
time, then units; every innermost loop runs along the contiguous batch dim, so that it
vectorises. tanh is written without libm calls so that it vectorises too:
tanh(|u|) = -e / (2 + e), e = expm1(-2|u|), with expm1 by Cody-Waite reduction and a
degree-13 Taylor polynomial, in float64 (4e-16 relative: tests; float32 rounds it, 3e-8).
No fastmath, and numpy's error model (x / 0 is inf, not an exception, which also lets
the loops vectorise): NaN and inf propagate as in torch, so a diverging perturbed student
gives inf / NaN, never a finite number.

Compilation: ``cache=True`` writes the compiled code to ``__pycache__`` next to this file;
numba writes each cache file to a temporary name and renames it into place, so two jobs
compiling at once (or on a shared file system) each see either no entry or a whole one,
and a stale or unreadable entry is recompiled. If the folder is not writable numba falls
back to a user cache folder (NUMBA_CACHE_DIR overrides both).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, types
from numba.extending import overload

LINEAR, TANH, HARDTANH = 0, 1, 2
ACTIVATION_CODES = {"linear": LINEAR, "tanh": TANH, "hardtanh": HARDTANH}

# "contract" lets LLVM fuse a * b + c into one FMA (one rounding, not two); no other fast-math
# flag: "nnan" / "ninf" would let it assume away the NaN and inf of a diverging student
_FAST = {"contract"}
_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": _FAST}

# float64 expm1: Cody-Waite split of ln 2 (the high part has 32 trailing zero bits, so
# k ln2_hi is exact for |k| < 2^20), 1/k! Taylor coefficients
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_ROUND = 6755399441055744.0  # 1.5 * 2^52: x + R - R rounds x to an integer
_TANH64_CLAMP = 20.0  # tanh(20) == 1.0 in float64


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath=_FAST)
def tanh64(x):
    """tanh of a float64 without libm: -e / (2 + e) with e = expm1(-2|x|); NaN stays NaN."""
    ax = abs(x)
    ax = _TANH64_CLAMP if ax > _TANH64_CLAMP else ax  # NaN fails the test and stays
    y = -2.0 * ax  # in [-40, 0]
    kf = (-y * _LOG2E + _ROUND) - _ROUND  # -k, an integer in [0, 58]
    r = (y + kf * _LN2_HI) + kf * _LN2_LO  # |r| <= ln2 / 2
    p = 1.0 / 6227020800.0  # expm1(r) = r + r^2/2 + ... + r^13/13!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    em1 = p * r * r + r  # expm1(r)
    # 2^-kf by its binary digits (selects, no integer bit tricks): scale in (2^-59, 1]
    scale = 1.0
    scale, kf = (scale * 2.3283064365386963e-10, kf - 32.0) if kf >= 32.0 else (scale, kf)
    scale, kf = (scale * 1.52587890625e-05, kf - 16.0) if kf >= 16.0 else (scale, kf)
    scale, kf = (scale * 0.00390625, kf - 8.0) if kf >= 8.0 else (scale, kf)
    scale, kf = (scale * 0.0625, kf - 4.0) if kf >= 4.0 else (scale, kf)
    scale, kf = (scale * 0.25, kf - 2.0) if kf >= 2.0 else (scale, kf)
    scale = scale * 0.5 if kf >= 1.0 else scale
    # expm1(y) = 2^k (expm1(r) + 1) - 1, as scale em1 + (scale - 1): exact for k = 0
    e = scale * em1 + (scale - 1.0)
    t = -e / (2.0 + e)
    return t if x >= 0.0 else (-t if x < 0.0 else x)  # x NaN: NaN


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath=_FAST)
def tanh32(x):
    """tanh of a float32 by ``tanh64``'s formula in float32 arithmetic (8 lanes, not 4):
    a degree-7 expm1, |x| clamped to 9 (tanh(9) rounds to 1); within 3e-7 of tanh (tests),
    as the torch path's 2 sigmoid(2u) - 1. NaN stays NaN."""
    f = np.float32
    ax = abs(x)
    ax = f(9.0) if ax > f(9.0) else ax
    y = f(-2.0) * ax
    kf = (-y * f(_LOG2E) + f(12582912.0)) - f(12582912.0)  # 1.5 * 2^23 rounds; in [0, 26]
    r = (y + kf * f(0.693145751953125)) + kf * f(1.428606765330187045e-06)
    p = f(1.0 / 5040.0)
    p = p * r + f(1.0 / 720.0)
    p = p * r + f(1.0 / 120.0)
    p = p * r + f(1.0 / 24.0)
    p = p * r + f(1.0 / 6.0)
    p = p * r + f(0.5)
    em1 = p * r * r + r
    scale = f(1.0)
    scale, kf = (scale * f(1.52587890625e-05), kf - f(16.0)) if kf >= f(16.0) else (scale, kf)
    scale, kf = (scale * f(0.00390625), kf - f(8.0)) if kf >= f(8.0) else (scale, kf)
    scale, kf = (scale * f(0.0625), kf - f(4.0)) if kf >= f(4.0) else (scale, kf)
    scale, kf = (scale * f(0.25), kf - f(2.0)) if kf >= f(2.0) else (scale, kf)
    scale = scale * f(0.5) if kf >= f(1.0) else scale
    e = scale * em1 + (scale - f(1.0))
    t = -e / (f(2.0) + e)
    return t if x >= f(0.0) else (-t if x < f(0.0) else x)


def tanh(x):
    """tanh of a float32 (``tanh32``) or float64 (``tanh64``), inside compiled code."""
    raise NotImplementedError("compiled code only")


@overload(tanh, inline="always")
def _tanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: tanh32(x)
    return lambda x: tanh64(x)


@njit(**_JIT)
def _activate(u, s, act, one):
    """s = sigma(u) along one row (the contiguous batch)."""
    n = u.shape[0]
    if act == TANH:
        for e in range(n):
            s[e] = tanh(u[e])
    elif act == HARDTANH:
        for e in range(n):
            v = u[e]
            v = one if v > one else v
            s[e] = -one if v < -one else v
    else:
        for e in range(n):
            s[e] = u[e]


@njit(**_JIT)
def _derivative(g, s, act, out, one):
    """out = g sigma'(u) from s = sigma(u): 1 - s^2 (tanh), 0 where |s| = 1 (hardtanh)."""
    n = g.shape[0]
    if act == TANH:
        for e in range(n):
            out[e] = g[e] * (one - s[e] * s[e])
    elif act == HARDTANH:
        for e in range(n):
            v = s[e]
            out[e] = g[e] if (v > -one and v < one) else one - one
    else:
        for e in range(n):
            out[e] = g[e]


@njit(**_JIT)
def forward(xt, U, bias, a, c, consts, act, ssm, H, S, Y):
    """Outputs Y (r, n, T, o) of r diagonal students on inputs xt (r or 1, T, d, n).

    U (r, m, d), bias (r, m), a (r, m) (f applied), c (r, o, m), consts = (dt, 1) in the
    arrays' dtype (float32 code then stays float32); ``ssm`` selects the
    family. H holds h_0..h_T (r, T+1, m, n) and S the activations (r, T, m, n) for the
    backward pass, or, forward only, two states (r, 2, m, n) and one (r, 1, m, n): each
    copy's own block contiguous, so that its time loop streams one region.
    """
    shared, T, d, n = xt.shape[0] == 1, xt.shape[1], xt.shape[2], xt.shape[3]
    r, m, o = a.shape[0], a.shape[1], c.shape[1]
    keep = H.shape[1] == T + 1
    dt, one = consts[0], consts[1]
    u = np.empty(n, dtype=H.dtype)
    yb = np.empty((o, n), dtype=H.dtype)
    for i in range(r):
        xi = 0 if shared else i
        H[i, 0] = 0.0
        for k in range(T):
            h = H[i, k] if keep else H[i, k % 2]
            hn = H[i, k + 1] if keep else H[i, (k + 1) % 2]
            sk = S[i, k] if keep else S[i, 0]
            yb[:] = 0.0
            for p in range(m):
                hp, hnp, sp = h[p], hn[p], sk[p]
                na, b = -a[i, p], bias[i, p]
                x0, w0 = xt[xi, k, 0], U[i, p, 0]
                for e in range(n):
                    u[e] = (b + w0 * x0[e]) + na * hp[e]
                for q in range(1, d):
                    xq, wq = xt[xi, k, q], U[i, p, q]
                    for e in range(n):
                        u[e] += wq * xq[e]
                if ssm:
                    for e in range(n):
                        hnp[e] = hp[e] + dt * u[e]
                    _activate(hnp, sp, act, one)
                    out = sp
                else:
                    _activate(u, sp, act, one)
                    for e in range(n):
                        hnp[e] = hp[e] + dt * sp[e]
                    out = hnp
                for j in range(o):
                    cj = c[i, j, p]
                    ybj = yb[j]
                    for e in range(n):
                        ybj[e] += cj * out[e]
            for j in range(o):
                for e in range(n):
                    Y[i, e, k, j] = yb[j, e]


@njit(**_JIT)
def backward(xt, H, S, a, c, dY, consts, act, ssm, dU, db, da, dc):
    """Gradients dU (r, m, d), db (r, m), da (r, m) (in a) and dc (r, o, m) from the
    outputs' gradient dY (r, n, T, o), with the states H, S of ``forward`` (keep mode).

    Backward through time, G the gradient in h_{k+1}, for k = T-1..0:
        rnn   G += c^T dy_k,   dc += dy_k h_{k+1}^T,   du = dt G sigma'(u_k)
        ssm   G += sigma'(h_{k+1}) c^T dy_k,   dc += dy_k s_k^T,   du = dt G
        then  dU += du x_k^T,  db += du,  da -= du h_k,  G -= a du
    Sums over the batch run elementwise into (m, n) rows, reduced once at the end.
    """
    shared, T, d, n = xt.shape[0] == 1, xt.shape[1], xt.shape[2], xt.shape[3]
    r, m, o = a.shape[0], a.shape[1], c.shape[1]
    dt_, one = consts[0], consts[1]
    G = np.empty((m, n), dtype=H.dtype)
    acc_b = np.empty((m, n), dtype=H.dtype)
    acc_a = np.empty((m, n), dtype=H.dtype)
    acc_U = np.empty((m, d, n), dtype=H.dtype)
    acc_c = np.empty((o, m, n), dtype=H.dtype)
    dyk = np.empty((o, n), dtype=H.dtype)
    t = np.empty(n, dtype=H.dtype)
    du = np.empty(n, dtype=H.dtype)
    for i in range(r):
        xi = 0 if shared else i
        G[:] = 0.0
        acc_b[:] = 0.0
        acc_a[:] = 0.0
        acc_U[:] = 0.0
        acc_c[:] = 0.0
        for k in range(T - 1, -1, -1):
            for j in range(o):
                for e in range(n):
                    dyk[j, e] = dY[i, e, k, j]
            for p in range(m):
                Gp, hp, hnp, sp = G[p], H[i, k, p], H[i, k + 1, p], S[i, k, p]
                na = -a[i, p]
                t[:] = 0.0
                for j in range(o):
                    cj, dyj = c[i, j, p], dyk[j]
                    for e in range(n):
                        t[e] += cj * dyj[e]
                    acj = acc_c[j, p]
                    if ssm:
                        for e in range(n):
                            acj[e] += dyj[e] * sp[e]
                    else:
                        for e in range(n):
                            acj[e] += dyj[e] * hnp[e]
                if ssm:
                    _derivative(t, sp, act, du, one)
                    for e in range(n):
                        Gp[e] += du[e]
                        du[e] = dt_ * Gp[e]
                else:
                    for e in range(n):
                        Gp[e] += t[e]
                        t[e] = dt_ * Gp[e]
                    _derivative(t, sp, act, du, one)
                ab, aa = acc_b[p], acc_a[p]
                for e in range(n):
                    ab[e] += du[e]
                    aa[e] -= du[e] * hp[e]
                    Gp[e] += na * du[e]
                for q in range(d):
                    xq, aq = xt[xi, k, q], acc_U[p, q]
                    for e in range(n):
                        aq[e] += du[e] * xq[e]
        for p in range(m):
            db[i, p] = acc_b[p].sum()
            da[i, p] = acc_a[p].sum()
            for q in range(d):
                dU[i, p, q] = acc_U[p, q].sum()
            for j in range(o):
                dc[i, j, p] = acc_c[j, p].sum()


def warm() -> None:
    """Compile (or load from the cache) every kernel for float32 and float64, on a tiny
    problem: ``make setup`` runs it once, so the workflow's jobs only load."""
    for dtype in (np.float32, np.float64):
        T, r, m, d, o, n = 3, 2, 2, 1, 1, 4
        xt = np.ones((r, T, d, n), dtype)
        U, bias, a = np.ones((r, m, d), dtype), np.zeros((r, m), dtype), np.ones((r, m), dtype)
        c, consts = np.ones((r, o, m), dtype), np.ones(2, dtype)
        H, S = np.empty((r, T + 1, m, n), dtype), np.empty((r, T, m, n), dtype)
        Y = np.empty((r, n, T, o), dtype)
        for ssm in (False, True):
            forward(xt, U, bias, a, c, consts, TANH, ssm, H, S, Y)
            H2, S1 = H[:, :2].copy(), S[:, :1].copy()
            forward(xt, U, bias, a, c, consts, TANH, ssm, H2, S1, Y)
            forward(xt[:1], U, bias, a, c, consts, TANH, ssm, H2, S1, Y)
            grads = (np.empty_like(U), np.empty_like(bias), np.empty_like(a), np.empty_like(c))
            backward(xt, H, S, a, c, Y, consts, TANH, ssm, *grads)


def _array(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view of a CPU tensor (a copy only where it is not contiguous)."""
    return t.detach().contiguous().numpy()


class FusedRecurrence(torch.autograd.Function):
    """Outputs y (r, b, t, o) of r diagonal rnn or ssm students (c0 not added), by the fused
    kernels; the drop-in of ``model.DiagonalRecurrence`` (same arguments, plus ``ssm``).

    x (r, b, t, d) one batch per copy or (b, t, d) shared, U (r, m, d), b (r, m),
    a (r, m) (f applied), c (r, o, m). ``keep=False`` (no gradient needed) holds two
    states per copy, not all T: the forward-only pass of perturbation sweeps and memory
    functions. CPU tensors of one dtype (float32 or float64).
    """

    @staticmethod
    def forward(ctx, x, U, b, a, c, dt, activation, ssm, keep):
        if x.dim() == 4:
            xt = x.permute(0, 2, 3, 1).contiguous()  # (r, t, d, b)
        else:
            xt = x.permute(1, 2, 0).contiguous().unsqueeze(0)  # (1, t, d, b)
        _, T, _, n = xt.shape
        r, m = a.shape
        o = c.shape[1]
        H = a.new_empty(r, T + 1 if keep else 2, m, n)
        S = a.new_empty(r, T if keep else 1, m, n)
        Y = a.new_empty(r, n, T, o)
        consts = np.array([dt, 1.0], dtype=_array(a).dtype)
        code = ACTIVATION_CODES[activation]
        arrays = [_array(v) for v in (xt, U, b, a, c)]
        forward(*arrays, consts, code, ssm, H.numpy(), S.numpy(), Y.numpy())
        if keep:
            ctx.save_for_backward(xt, H, S, a, c)
        ctx.consts, ctx.code, ctx.ssm = consts, code, ssm
        return Y

    @staticmethod
    def backward(ctx, dY):
        xt, H, S, a, c = ctx.saved_tensors
        r, m = a.shape
        dU = a.new_empty(r, m, xt.shape[2])
        db, da, dc = torch.empty_like(a), torch.empty_like(a), torch.empty_like(c)
        arrays = [_array(v) for v in (xt, H, S, a, c, dY)]
        grads = [v.numpy() for v in (dU, db, da, dc)]
        backward(*arrays, ctx.consts, ctx.code, ctx.ssm, *grads)
        return None, dU, db, da, dc, None, None, None, None
