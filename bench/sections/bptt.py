"""Section ``bptt``: the hand-written backward pass against autograd through the loop, and
the pack-step helpers shared with ``tanh`` and ``kernel``.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from itertools import product

import torch
from torch import Tensor

from bench.common import ROOT, Table, read_config, side_by_side
from curse_memory.model import (
    ACTIVATIONS,
    StudentConfig,
    StudentRNN,
    recurrence,
    stack_students,
    student_forward,
)
from curse_memory.training import mse


def autograd_pack_forward(params: dict, x: Tensor, cfg: StudentConfig, maps: list) -> Tensor:
    """The diagonal rnn of r copies, x (r, b, t, d), by autograd through the Euler loop:
    the baseline of section ``bptt`` (the same maths and layout as ``DiagonalRecurrence``:
    each step's states (r, m, b), the readout (r, o, m) x (r, m, b))."""
    a = recurrence(params, cfg, maps=maps).unsqueeze(-1)  # (r, m, 1)
    U, c = params["U"], params["c"]
    z = params["b"][None, :, :, None] + torch.einsum("rmd,rbtd->trmb", U, x)
    z = z.contiguous()  # (t, r, m, b): each step's block contiguous, as ours
    act, h, ys = ACTIVATIONS[cfg.activation], torch.zeros_like(z[0]), []
    for zk in z.unbind(0):
        h = h + cfg.dt * act(torch.addcmul(zk, h, a, value=-1.0))
        ys.append(torch.bmm(c, h))  # (r, o, b)
    return torch.stack(ys, dim=2).transpose(1, 3) + params["c0"][:, None, None, :]  # (r, b, t, o)


torch_forward = functools.partial(student_forward, kernel="torch")  # the op-by-op time loop


fused_forward = functools.partial(student_forward, kernel="fused")  # curse_memory.kernels


def bptt_step(fwd, params: dict, x: Tensor, y: Tensor, cfg: StudentConfig, maps: list):
    """A closure: the MSE of a pack by ``fwd`` and its gradients in fresh leaf parameters."""
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}

    def step():
        loss = mse(fwd(leaves, x, cfg, maps=maps), y)
        return float(loss.detach()), torch.autograd.grad(loss, list(leaves.values()))

    return step


def bench_bptt(args, table: Table) -> None:
    """Section 8: the hand-written backward pass against autograd through the loop."""
    s = read_config(ROOT / "config" / "config.yaml")["students"]
    B, widths = 128, args.bptt_widths or s["widths"]
    for act, m, r in product(("tanh", "hardtanh"), widths, args.bptt_r):
        maps = ["direct", "softplus"] * (r // 2) + ["direct"] * (r % 2)
        cfgs = [StudentConfig(width=m, activation=act, parameterisation=p) for p in maps]
        models = [
            StudentRNN(c, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(cfgs)
        ]
        params, cfg, _ = stack_students(models)
        gen = torch.Generator().manual_seed(m)
        x, y = (torch.randn(r, B, args.T, 1, generator=gen) for _ in range(2))
        p64 = {k: v.double() for k, v in params.items()}
        cfg64 = replace(cfg, dtype="float64")
        loss_o, grad_o = bptt_step(torch_forward, p64, x.double(), y.double(), cfg64, maps)()
        loss_b, grad_b = bptt_step(
            autograd_pack_forward, p64, x.double(), y.double(), cfg64, maps
        )()
        rel_loss = abs(loss_o - loss_b) / abs(loss_b)
        rel_grad = max(
            float((g - h).norm() / h.norm()) for g, h in zip(grad_o, grad_b, strict=True)
        )
        setting = f"act={act} m={m} r={r} T={args.T} B={B} dtype={cfg.dtype}"
        table.check(
            f"bptt {setting} loss_rel={rel_loss:.2e} grad_rel={rel_grad:.2e} tol=1e-10",
            rel_loss <= 1e-10 and rel_grad <= 1e-10,
        )
        fns = [
            bptt_step(fwd, params, x, y, cfg, maps)
            for fwd in (torch_forward, autograd_pack_forward)
        ]
        ours, base = side_by_side(fns, args.repeats, args.warmup, torch.device("cpu"))
        table.add("bptt", setting, ours, base)


def exactly(exact, step):
    """step() with torch.tanh in place of the sigmoid form (the baseline of ``tanh``)."""
    with exact():
        return step()
