"""Fused recurrence kernels (numba) for the diagonal rnn and ssm students.

One compiled call runs the whole time loop of r copies, forward or backward, where
``model.DiagonalRecurrence`` issues about 7 tensor ops per forward step and 10 per backward
step. The maths are those of ``DiagonalRecurrence`` (see its docstring), with the ssm too:

    rnn  u_k = U x_k + b - a h_k,  s_k = sigma(u_k),  h_{k+1} = h_k + dt s_k,  y_k = c h_{k+1}
    ssm  u_k = U x_k + b - a h_k,  h_{k+1} = h_k + dt u_k,  s_k = sigma(h_{k+1}),  y_k = c s_k

Layout: copies outermost (each copy's states stay in cache through its time loop), then
time, then units; every innermost loop runs along the contiguous batch dim, so that it
vectorises (inputs and outputs are transposed per copy into (T, d, n) and (T, o, n)
buffers). With d = o = 1 (the configs') a unit's step is one pass along the batch, the
activation a compile-time constant in each loop, and the buffers are indexed directly:
a row view (``h[p]``) in the inner loops costs a reference count each, which at b = 128
cost more than the arithmetic. The backward pass keeps no T states: the forward saves a
checkpoint every ``seg`` steps and the backward runs each segment forward again into
buffers that stay in the L2 cache (``segment``); storing all T states of a 12-pack meant
10-35 MB of fresh buffers page-faulted in every step, which cost more than the extra
forward. tanh is written without libm calls so that it vectorises too:
tanh(|u|) = -e / (2 + e), e = expm1(-2|u|), with expm1 by Cody-Waite reduction and a
degree-13 Taylor polynomial, in float64 (4e-16 relative: tests; float32 rounds it, 3e-8),
and 2^-k built from its exponent bits.
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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

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


@intrinsic
def _from_bits(typingctx, bits):
    """The float whose IEEE bits are the int32 (float32) or int64 (float64) ``bits``."""
    if bits == types.int32:
        return types.float32(types.int32), lambda c, b, sig, args: b.bitcast(
            args[0], ir.FloatType()
        )
    if bits == types.int64:
        return types.float64(types.int64), lambda c, b, sig, args: b.bitcast(
            args[0], ir.DoubleType()
        )
    return None


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
    # scale = 2^-kf in (2^-59, 1] from its exponent bits, (1023 - kf) 2^52 (exact as a
    # float64, converted to an integer and reinterpreted): 3 vector instructions
    scale = _from_bits(np.int64((1023.0 - kf) * 4503599627370496.0))
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
    scale = _from_bits(np.int32((f(127.0) - kf) * f(8388608.0)))  # 2^-kf, as tanh64
    e = scale * em1 + (scale - f(1.0))
    t = -e / (f(2.0) + e)
    return t if x >= f(0.0) else (-t if x < f(0.0) else x)


def tanh(x):
    """tanh of a float32 (``tanh32``) or float64 (``tanh64``), inside compiled code."""
    raise NotImplementedError("compiled code only")


@overload(tanh)
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
def _to_batch_last(v, out):
    """out (T, d, n) = v (n, T, d) transposed."""
    n, T, d = v.shape
    for e in range(n):
        for k in range(T):
            for q in range(d):
                out[k, q, e] = v[e, k, q]


@njit(**_JIT)
def _to_batch_first(v, out):
    """out (n, T, o) = v (T, o, n) transposed."""
    T, o, n = v.shape
    for e in range(n):
        for k in range(T):
            for j in range(o):
                out[e, k, j] = v[k, j, e]


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath=_FAST)
def _sigma(u, act, one):
    """sigma(u) of one value, as ``_activate``."""
    if act == TANH:
        return tanh(u)
    if act == HARDTANH:
        v = one if u > one else u
        return -one if v < -one else v
    return u


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath=_FAST)
def _step_d1(xt, k, U, bias, a, i, dt, one, act, ssm, H, j0, j1, S, js):
    """``_step`` for d = 1, inlined with ``act`` a constant: one pass along the batch per
    unit, indexing the buffers directly (a row view costs a reference count each)."""
    m, n = H.shape[1], H.shape[2]
    for p in range(m):
        na, b, w0 = -a[i, p], bias[i, p], U[i, p, 0]
        if ssm:
            for e in range(n):
                h = H[j0, p, e]
                hn = h + dt * ((b + w0 * xt[k, 0, e]) + na * h)
                H[j1, p, e] = hn
                S[js, p, e] = _sigma(hn, act, one)
        else:
            for e in range(n):
                h = H[j0, p, e]
                sv = _sigma((b + w0 * xt[k, 0, e]) + na * h, act, one)
                S[js, p, e] = sv
                H[j1, p, e] = h + dt * sv


@njit(**_JIT)
def _step(xt, k, U, bias, a, i, dt, one, act, ssm, H, j0, j1, S, js, u):
    """One time step of copy i: states H[j0] (m, n) to H[j1], activations S[js] (m, n), from
    the inputs xt[k] (d, n) and the copy's U (m, d), b (m), a (m); u (n) is scratch."""
    m, n, d = H.shape[1], H.shape[2], xt.shape[1]
    if d == 1:
        if act == TANH:
            _step_d1(xt, k, U, bias, a, i, dt, one, TANH, ssm, H, j0, j1, S, js)
        elif act == HARDTANH:
            _step_d1(xt, k, U, bias, a, i, dt, one, HARDTANH, ssm, H, j0, j1, S, js)
        else:
            _step_d1(xt, k, U, bias, a, i, dt, one, LINEAR, ssm, H, j0, j1, S, js)
        return
    for p in range(m):
        hp, hnp, sp = H[j0, p], H[j1, p], S[js, p]
        na, b, w0 = -a[i, p], bias[i, p], U[i, p, 0]
        x0 = xt[k, 0]
        for e in range(n):
            u[e] = (b + w0 * x0[e]) + na * hp[e]
        for q in range(1, d):
            xq, wq = xt[k, q], U[i, p, q]
            for e in range(n):
                u[e] += wq * xq[e]
        if ssm:
            for e in range(n):
                hnp[e] = hp[e] + dt * u[e]
            _activate(hnp, sp, act, one)
        else:
            _activate(u, sp, act, one)
            for e in range(n):
                hnp[e] = hp[e] + dt * sp[e]


@njit(**_JIT)
def forward(x, U, bias, a, c, consts, act, ssm, seg, H, Y):
    """Outputs Y (r, n, T, o) of r diagonal students on inputs x (r or 1, n, T, d).

    U (r, m, d), bias (r, m), a (r, m) (f applied), c (r, o, m), consts = (dt, 1) in the
    arrays' dtype (float32 code then stays float32); ``ssm`` selects the family. The
    states live in two (m, n) buffers; H (r, ceil(T / seg), m, n) receives the checkpoints
    h_0, h_seg, h_2seg, ... of each copy for ``backward``, or has 0 rows (forward only).
    Each copy's inputs and outputs pass through (T, d, n) and (T, o, n) buffers, so that
    every inner loop runs along the batch.
    """
    shared, n, T, d = x.shape[0] == 1, x.shape[1], x.shape[2], x.shape[3]
    r, m, o = a.shape[0], a.shape[1], c.shape[1]
    xt = np.empty((T, d, n), dtype=Y.dtype)
    yt = np.empty((T, o, n), dtype=Y.dtype)
    save = H.shape[1] > 0
    dt, one = consts[0], consts[1]
    h2 = np.empty((2, m, n), dtype=Y.dtype)  # h_k, h_{k+1} alternately
    s1 = np.empty((1, m, n), dtype=Y.dtype)
    u = np.empty(n, dtype=Y.dtype)
    for i in range(r):
        if i == 0 or not shared:
            _to_batch_last(x[i], xt)
        h2[0] = 0.0
        for k in range(T):
            j0, j1 = k % 2, (k + 1) % 2
            if save and k % seg == 0:
                H[i, k // seg] = h2[j0]
            _step(xt, k, U, bias, a, i, dt, one, act, ssm, h2, j0, j1, s1, 0, u)
            out, jo = (s1, 0) if ssm else (h2, j1)
            for j in range(o):  # indexed directly, no row views (a reference count each)
                for e in range(n):
                    yt[k, j, e] = 0.0
                for p in range(m):
                    cjp = c[i, j, p]
                    for e in range(n):
                        yt[k, j, e] += cjp * out[jo, p, e]
        _to_batch_first(yt, Y[i])


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath=_FAST)
def _dsigma(g, s, act, one):
    """g sigma'(u) from s = sigma(u), as ``_derivative``."""
    if act == TANH:
        return g * (one - s * s)
    if act == HARDTANH:
        return g if (s > -one and s < one) else one - one
    return g


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath=_FAST)
def _back_d1(dYt, c, Ss, Hs, xt, G, acc_c, acc_b, acc_a, acc_U, a, i, k, kk, dt_, act, ssm, one):
    """``backward``'s step k for d = o = 1, inlined with ``act`` a constant: one pass along
    the batch per unit (the same sums in the same order), indexing the arrays directly."""
    m, n = G.shape[0], G.shape[1]
    for p in range(m):
        na, cj = -a[i, p], c[i, 0, p]
        if ssm:
            for e in range(n):
                dye, sv = dYt[k, 0, e], Ss[kk, p, e]
                acc_c[0, p, e] += dye * sv
                g = G[p, e] + _dsigma(cj * dye, sv, act, one)
                du = dt_ * g
                acc_b[p, e] += du
                acc_a[p, e] -= du * Hs[kk, p, e]
                G[p, e] = g + na * du
                acc_U[p, 0, e] += du * xt[k, 0, e]
        else:
            for e in range(n):
                dye = dYt[k, 0, e]
                acc_c[0, p, e] += dye * Hs[kk + 1, p, e]
                g = G[p, e] + cj * dye
                du = _dsigma(dt_ * g, Ss[kk, p, e], act, one)
                acc_b[p, e] += du
                acc_a[p, e] -= du * Hs[kk, p, e]
                G[p, e] = g + na * du
                acc_U[p, 0, e] += du * xt[k, 0, e]


@njit(**_JIT)
def backward(x, H, U, bias, a, c, dY, consts, act, ssm, seg, dU, db, da, dc):
    """Gradients dU (r, m, d), db (r, m), da (r, m) (in a) and dc (r, o, m) from the
    outputs' gradient dY (r, n, T, o), with the checkpoints H of ``forward``.

    Each segment of ``seg`` steps, last first, is run forward again from its checkpoint
    into (seg + 1, m, n) states and (seg, m, n) activations that stay in cache (the states
    of all T steps of r copies would not: streaming them through memory, and page-faulting
    a fresh buffer each step, cost more than the arithmetic), then backward through time,
    G the gradient in h_{k+1}, for k = k1-1..k0:
        rnn   G += c^T dy_k,   dc += dy_k h_{k+1}^T,   du = dt G sigma'(u_k)
        ssm   G += sigma'(h_{k+1}) c^T dy_k,   dc += dy_k s_k^T,   du = dt G
        then  dU += du x_k^T,  db += du,  da -= du h_k,  G -= a du
    Sums over the batch run elementwise into (m, n) rows, reduced once at the end.
    """
    shared, n, T, d = x.shape[0] == 1, x.shape[1], x.shape[2], x.shape[3]
    r, m, o = a.shape[0], a.shape[1], c.shape[1]
    dt_, one = consts[0], consts[1]
    xt = np.empty((T, d, n), dtype=H.dtype)
    dYt = np.empty((T, o, n), dtype=H.dtype)
    Hs = np.empty((seg + 1, m, n), dtype=H.dtype)
    Ss = np.empty((seg, m, n), dtype=H.dtype)
    G = np.empty((m, n), dtype=H.dtype)
    acc_b = np.empty((m, n), dtype=H.dtype)
    acc_a = np.empty((m, n), dtype=H.dtype)
    acc_U = np.empty((m, d, n), dtype=H.dtype)
    acc_c = np.empty((o, m, n), dtype=H.dtype)
    t = np.empty(n, dtype=H.dtype)
    du = np.empty(n, dtype=H.dtype)
    for i in range(r):
        if i == 0 or not shared:
            _to_batch_last(x[i], xt)
        _to_batch_last(dY[i], dYt)
        G[:] = 0.0
        acc_b[:] = 0.0
        acc_a[:] = 0.0
        acc_U[:] = 0.0
        acc_c[:] = 0.0
        for j0 in range(H.shape[1] - 1, -1, -1):
            k0 = j0 * seg
            k1 = min(T, k0 + seg)
            Hs[0] = H[i, j0]
            for k in range(k0, k1):
                kk = k - k0
                _step(xt, k, U, bias, a, i, dt_, one, act, ssm, Hs, kk, kk + 1, Ss, kk, t)
            for k in range(k1 - 1, k0 - 1, -1):
                kk = k - k0
                if o == 1 and d == 1:
                    ac, ab, aa, aU = acc_c, acc_b, acc_a, acc_U
                    if act == TANH:
                        _back_d1(dYt, c, Ss, Hs, xt, G, ac, ab, aa, aU, a, i, k, kk, dt_, TANH,
                                 ssm, one)  # fmt: skip
                    elif act == HARDTANH:
                        _back_d1(dYt, c, Ss, Hs, xt, G, ac, ab, aa, aU, a, i, k, kk, dt_,
                                 HARDTANH, ssm, one)  # fmt: skip
                    else:
                        _back_d1(dYt, c, Ss, Hs, xt, G, ac, ab, aa, aU, a, i, k, kk, dt_,
                                 LINEAR, ssm, one)  # fmt: skip
                    continue
                dyk, hk, hk1, sk = dYt[k], Hs[k - k0], Hs[k - k0 + 1], Ss[k - k0]
                for p in range(m):
                    Gp, hp, hnp, sp = G[p], hk[p], hk1[p], sk[p]
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
                        xq, aq = xt[k, q], acc_U[p, q]
                        for e in range(n):
                            aq[e] += du[e] * xq[e]
        for p in range(m):
            db[i, p] = acc_b[p].sum()
            da[i, p] = acc_a[p].sum()
            for q in range(d):
                dU[i, p, q] = acc_U[p, q].sum()
            for j in range(o):
                dc[i, j, p] = acc_c[j, p].sum()


# a backward segment's states and activations, 2 seg m n values, stay within this many
# bytes: in the L2 cache (1-2 MiB a core) with the gradient rows beside them
SEGMENT_BYTES = 512 * 1024


def segment(T: int, m: int, n: int, itemsize: int) -> int:
    """Steps per checkpoint segment of the backward pass (1..T)."""
    return max(1, min(T, SEGMENT_BYTES // (2 * m * n * itemsize)))


def warm() -> None:
    """Compile (or load from the cache) every kernel for float32 and float64, on a tiny
    problem: ``make setup`` runs it once, so the workflow's jobs only load."""
    for dtype in (np.float32, np.float64):
        T, r, m, d, o, n, seg = 3, 2, 2, 1, 1, 4, 2
        x = np.ones((r, n, T, d), dtype)
        U, bias, a = np.ones((r, m, d), dtype), np.zeros((r, m), dtype), np.ones((r, m), dtype)
        c, consts = np.ones((r, o, m), dtype), np.ones(2, dtype)
        H, H0 = np.empty((r, 2, m, n), dtype), np.empty((r, 0, m, n), dtype)
        Y = np.empty((r, n, T, o), dtype)
        for ssm in (False, True):
            forward(x, U, bias, a, c, consts, TANH, ssm, seg, H, Y)
            forward(x, U, bias, a, c, consts, TANH, ssm, seg, H0, Y)
            forward(x[:1], U, bias, a, c, consts, TANH, ssm, seg, H0, Y)
            grads = (np.empty_like(U), np.empty_like(bias), np.empty_like(a), np.empty_like(c))
            backward(x, H, U, bias, a, c, Y, consts, TANH, ssm, seg, *grads)


def _array(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view of a CPU tensor (a copy only where it is not contiguous)."""
    return t.detach().contiguous().numpy()


class FusedRecurrence(torch.autograd.Function):
    """Outputs y (r, b, t, o) of r diagonal rnn or ssm students (c0 not added), by the fused
    kernels; the drop-in of ``model.DiagonalRecurrence`` (same arguments, plus ``ssm``).

    x (r, b, t, d) one batch per copy or (b, t, d) shared, U (r, m, d), b (r, m),
    a (r, m) (f applied), c (r, o, m). ``keep=False`` (no gradient needed) saves no
    checkpoints: the forward-only pass of perturbation sweeps and memory functions.
    ``keep=True`` saves ceil(T / seg) states per copy, not T (``segment``): the backward
    pass runs each segment forward again, in cache. CPU tensors of one dtype (float32 or
    float64).
    """

    @staticmethod
    def forward(ctx, x, U, b, a, c, dt, activation, ssm, keep):
        x = x if x.dim() == 4 else x.unsqueeze(0)  # (r or 1, b, t, d)
        _, n, T, _ = x.shape
        r, m = a.shape
        o = c.shape[1]
        seg = segment(T, m, n, a.element_size())
        H = a.new_empty(r, -(-T // seg) if keep else 0, m, n)
        Y = a.new_empty(r, n, T, o)
        consts = np.array([dt, 1.0], dtype=_array(a).dtype)
        code = ACTIVATION_CODES[activation]
        arrays = [_array(v) for v in (x, U, b, a, c)]
        forward(*arrays, consts, code, ssm, seg, H.numpy(), Y.numpy())
        if keep:
            ctx.save_for_backward(x, H, U, b, a, c)
        ctx.consts, ctx.code, ctx.ssm, ctx.seg = consts, code, ssm, seg
        return Y

    @staticmethod
    def backward(ctx, dY):
        x, H, U, b, a, c = ctx.saved_tensors
        dU, db, da, dc = (torch.empty_like(v) for v in (U, b, a, c))
        arrays = [_array(v) for v in (x, H, U, b, a, c, dY)]
        grads = [v.numpy() for v in (dU, db, da, dc)]
        backward(*arrays, ctx.consts, ctx.code, ctx.ssm, ctx.seg, *grads)
        return None, dU, db, da, dc, None, None, None, None
