"""Targets (method §1): sequence functionals with exponential or polynomial memory.

A target is a pure function of its ``TargetSpec``; the data seed only draws the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import special
from torch import Tensor

from .model import StudentConfig, StudentRNN, check_choice


# ---------------------------------------------------------------------------- kernels
def _exp(t, a=1.0):
    return np.exp(-a * t)


def _pol(t, s=0.1, p=1.1):
    return (1.0 + s * t) ** (-p)


def _shift(t, lo=9.0, hi=11.0):
    return ((t > lo) & (t < hi)).astype(float)


def _twoparts(t, a=1.0, center=9.0):
    return np.exp(-a * t) + np.exp(-((t - center) ** 2))


def _airy(t, shift=6.0):
    return special.airy(t - shift)[0]


def _sin(t, omega=1.0):
    return np.sin(omega * t)


# name -> (rho(t, **params), memory class); every parameter has a default
KERNELS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "exp": (_exp, "exponential"),
    "pol": (_pol, "polynomial"),
    "shift": (_shift, "delayed impulse"),
    "twoparts": (_twoparts, "bump at t=9"),
    "airy": (_airy, "oscillating, decaying"),
    "sin": (_sin, "non-decaying"),
}


def kernel(name: str, t: np.ndarray, **params) -> np.ndarray:
    """rho(t) of the named kernel; unknown names or parameters raise a ValueError."""
    check_choice("kernel", name, KERNELS)
    fn = KERNELS[name][0]
    allowed = fn.__code__.co_varnames[1 : fn.__code__.co_argcount]
    for key in params:
        check_choice(f"parameter of kernel {name}", key, allowed)
    return fn(np.asarray(t, dtype=float), **params)


# ---------------------------------------------------------------------------- inputs
INPUT_PROCESSES = ("white", "gp")


def make_inputs(n, T, d, process, sigma, dt, rng: np.random.Generator) -> np.ndarray:
    """Input sequences x (n, T, d): white N(0, sigma^2) noise, or its Brownian cumulative sum."""
    check_choice("input", process, INPUT_PROCESSES)
    noise = sigma * rng.standard_normal((n, T, d))
    if process == "white":
        return noise
    return np.cumsum(noise * np.sqrt(dt), axis=1)


def linear_functional(x: np.ndarray, rho: np.ndarray, dt: float) -> np.ndarray:
    """y_k = dt * sum_{j=0..k} rho_j x_{k-j}, summed over input dims: (n, T, d) -> (n, T, 1).

    FFT convolution zero-padded to 2T, so O(T log T) and exactly causal.
    """
    T = x.shape[1]
    nfft = 2 * T
    spectrum = np.fft.rfft(x, nfft, axis=1) * np.fft.rfft(rho[:T], nfft)[None, :, None]
    y = np.fft.irfft(spectrum, nfft, axis=1)[:, :T, :]
    return dt * y.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------- specs
TARGET_KINDS = ("linear", "nonlinear_readout", "teacher_rnn", "teacher_transformer")
POSITIONAL = ("sinusoidal", "none")  # teacher_transformer: positional encoding
READOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "quadratic": lambda z: z + 0.5 * z**2,
}


@dataclass
class TargetSpec:
    """A target functional and the law of its inputs."""

    kind: str = "linear"  # linear | nonlinear_readout | teacher_rnn | teacher_transformer
    kernel: str = "exp"  # rho of linear and nonlinear_readout targets
    kernel_params: dict = field(default_factory=dict)  # e.g. {"s": 0.1, "p": 1.1} for pol
    readout: str = "tanh"  # nonlinear_readout: phi in y = phi(z)
    teacher_width: int = 16  # teacher_rnn: hidden width
    teacher_eig: tuple[float, float] = (0.3, 1.0)  # teacher_rnn: eigenvalues, away from 0
    teacher_seed: int = 0  # teacher_rnn, teacher_transformer: weights (fixed across data seeds)
    transformer_width: int = 16  # teacher_transformer: model width (read-in dimension)
    transformer_heads: int = 2  # teacher_transformer: attention heads (divide the width)
    transformer_ff: int = 64  # teacher_transformer: hidden width of the feed-forward block
    transformer_positional: str = "sinusoidal"  # teacher_transformer: sinusoidal | none
    T: int = 100  # horizon
    dt: float = 1.0
    d: int = 1  # input dimension
    input: str = "white"  # white | gp
    sigma: float = 1.0  # input noise scale

    def __post_init__(self):
        check_choice("target kind", self.kind, TARGET_KINDS)
        check_choice("kernel", self.kernel, KERNELS)
        check_choice("readout", self.readout, READOUTS)
        check_choice("input", self.input, INPUT_PROCESSES)
        check_choice("transformer positional encoding", self.transformer_positional, POSITIONAL)
        if min(self.transformer_width, self.transformer_heads, self.transformer_ff) < 1:
            raise ValueError("need transformer_width, transformer_heads, transformer_ff >= 1")
        if self.transformer_width % self.transformer_heads:
            raise ValueError(
                f"transformer_heads ({self.transformer_heads}) must divide transformer_width "
                f"({self.transformer_width})"
            )
        kernel(self.kernel, np.zeros(1), **self.kernel_params)  # validates the names
        self.teacher_eig = tuple(float(v) for v in self.teacher_eig)
        if self.T < 2 or self.d < 1 or not self.dt > 0 or not self.sigma > 0:
            raise ValueError("need T >= 2, d >= 1, dt > 0 and sigma > 0")

    def rho(self, t: np.ndarray) -> np.ndarray:
        return kernel(self.kernel, t, **self.kernel_params)

    def analytic_memory(self, t: np.ndarray) -> np.ndarray | None:
        """|rho(t)| for linear targets (method §4); None where no closed form is known."""
        return np.abs(self.rho(t)) if self.kind == "linear" else None

    def functional(self) -> Callable[[np.ndarray], np.ndarray]:
        """The target as a map x (n, T', d) -> y (n, T', 1), float64, for any length T'."""
        if self.kind == "teacher_rnn":
            return _teacher(self)
        if self.kind == "teacher_transformer":
            return _transformer_teacher(self)
        phi = READOUTS[self.readout] if self.kind == "nonlinear_readout" else None

        def apply(x: np.ndarray) -> np.ndarray:
            z = linear_functional(x, self.rho(self.dt * np.arange(x.shape[1])), self.dt)
            return phi(z) if phi is not None else z

        return apply


def _teacher(spec: TargetSpec) -> Callable[[np.ndarray], np.ndarray]:
    """A fixed random stable tanh RNN, its output scaled to unit variance on white inputs."""
    gen = torch.Generator().manual_seed(spec.teacher_seed)
    cfg = StudentConfig(
        width=spec.teacher_width,
        structure="orthogonal",
        parameterisation="softplus",
        activation="tanh",
        dt=spec.dt,
        eig_init=spec.teacher_eig,
        d_in=spec.d,
        dtype="float64",
    )
    teacher = StudentRNN(cfg, generator=gen).requires_grad_(False)
    probe = torch.randn(256, spec.T, spec.d, generator=gen, dtype=torch.float64) * spec.sigma
    scale = float(teacher(probe).std())
    teacher.c.div_(scale)

    def apply(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return teacher(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return apply


class CausalTransformer(torch.nn.Module):
    """A fixed random one-layer causal Transformer, x (b, t, d) -> y (b, t, 1), float64.

    Read-in ``h = W_in x_k + b_in (+ p_k)``, with ``p_k`` the sinusoidal encoding of the
    position k (or none); one pre-norm block ``h += W_o attn(LN h)``, ``h += W_2 gelu(W_1 LN h
    + b_1)``; read-out ``y_k = w_out h_k``. The self-attention is causal: position k attends
    to positions j <= k only, so y_k depends on x_0..x_k alone (the reference code's decoder
    had no mask). It is computed in blocks of query positions, each against the keys up to
    the block's end, so a pass holds at most ``max_elements`` attention scores: a long
    horizon (the memory function's 10,000 steps) costs O(t^2) time but bounded memory.
    Weights are N(0, 1/fan_in), biases N(0, 1), drawn from ``generator``.
    """

    def __init__(self, d, width, heads, ff, positional, generator, max_elements=2**22):
        super().__init__()
        check_choice("transformer positional encoding", positional, POSITIONAL)
        self.heads, self.positional, self.max_elements = heads, positional, max_elements

        def draw(*shape, fan_in=None):
            scale = 1.0 / math.sqrt(fan_in) if fan_in else 1.0
            return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

        weights = {
            "w_in": draw(width, d, fan_in=d),
            "b_in": draw(width),
            "w_qkv": draw(3 * width, width, fan_in=width),
            "w_o": draw(width, width, fan_in=width),
            "w_1": draw(ff, width, fan_in=width),
            "b_1": draw(ff),
            "w_2": draw(width, ff, fan_in=ff),
            "w_out": draw(1, width, fan_in=width),
        }
        for name, value in weights.items():
            self.register_buffer(name, value)

    @staticmethod
    def sinusoidal(T: int, width: int) -> Tensor:
        """p_k (T, width): sin and cos of k / 10000^(2i/width) in alternate features."""
        k = torch.arange(T, dtype=torch.float64)[:, None]
        freq = 10000.0 ** (-torch.arange(0, width, 2, dtype=torch.float64) / width)
        pe = torch.zeros(T, width, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(k * freq)
        pe[:, 1::2] = torch.cos(k * freq)[:, : width // 2]
        return pe

    def attention(self, h: Tensor) -> Tensor:
        """Causal multi-head self-attention of h (b, t, w), in blocks of queries."""
        b, T, w = h.shape
        q, k, v = (h @ self.w_qkv.T).split(w, dim=-1)
        split = lambda z: z.reshape(b, T, self.heads, -1).transpose(1, 2)  # (b, H, t, w/H)
        q, k, v = split(q) / math.sqrt(w // self.heads), split(k), split(v)
        out = torch.empty_like(q)
        block = max(1, self.max_elements // (b * self.heads * T))  # query positions a pass
        for lo in range(0, T, block):
            hi = min(T, lo + block)
            scores = q[:, :, lo:hi] @ k[:, :, :hi].transpose(-1, -2)  # (b, H, hi-lo, hi)
            future = (
                torch.arange(hi, device=h.device) > torch.arange(lo, hi, device=h.device)[:, None]
            )
            scores.masked_fill_(future, -math.inf)  # exp(-inf) = 0: the future adds exact zeros
            out[:, :, lo:hi] = torch.softmax(scores, dim=-1) @ v[:, :, :hi]
        return (out.transpose(1, 2).reshape(b, T, w)) @ self.w_o.T

    def forward(self, x: Tensor) -> Tensor:
        norm = lambda z: torch.nn.functional.layer_norm(z, z.shape[-1:])
        h = x @ self.w_in.T + self.b_in  # (b, t, w)
        if self.positional == "sinusoidal":
            h = h + self.sinusoidal(x.shape[1], h.shape[-1]).to(h.device)
        h = h + self.attention(norm(h))
        h = h + torch.nn.functional.gelu(norm(h) @ self.w_1.T + self.b_1) @ self.w_2.T
        return h @ self.w_out.T  # (b, t, 1)


def _transformer_teacher(spec: TargetSpec) -> Callable[[np.ndarray], np.ndarray]:
    """The spec's fixed random causal Transformer, its output scaled to unit variance on
    white inputs of the target's horizon (as the teacher RNN's)."""
    gen = torch.Generator().manual_seed(spec.teacher_seed)
    teacher = CausalTransformer(
        spec.d,
        spec.transformer_width,
        spec.transformer_heads,
        spec.transformer_ff,
        spec.transformer_positional,
        generator=gen,
    )
    with torch.no_grad():
        probe = torch.randn(256, spec.T, spec.d, generator=gen, dtype=torch.float64) * spec.sigma
        teacher.w_out.div_(float(teacher(probe).std()))

    def apply(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return teacher(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return apply


def make_target(spec: TargetSpec, n_train: int, n_val: int, n_test: int, seed: int) -> dict:
    """Train/val/test splits of one target, its spec, seed and analytic memory (if any)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    x = make_inputs(n, spec.T, spec.d, spec.input, spec.sigma, spec.dt, rng)
    y = spec.functional()(x)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    splits = np.cumsum([0, n_train, n_val, n_test])
    data = {"spec": asdict(spec), "seed": seed, "y_var": float(y[: splits[1]].var())}
    for name, lo, hi in zip(("train", "val", "test"), splits[:-1], splits[1:], strict=True):
        data[f"x_{name}"], data[f"y_{name}"] = as_tensor(x[lo:hi]), as_tensor(y[lo:hi])
    return data
