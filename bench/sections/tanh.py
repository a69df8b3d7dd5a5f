"""Section ``tanh``: float32 tanh as 2 sigmoid(2u) - 1 against ``torch.tanh``."""

from __future__ import annotations

import functools
from itertools import product
from unittest import mock

import torch

from bench.common import ROOT, Table, read_config, side_by_side
from bench.sections.bptt import bptt_step, exactly, torch_forward
from curse_memory import model
from curse_memory.model import StudentConfig, StudentRNN, stack_students


def bench_tanh(args, table: Table) -> None:
    """Section 9: float32 tanh as 2 sigmoid(2u) - 1 against torch.tanh, in a packed step."""
    s = read_config(ROOT / "config" / "config.yaml")["students"]
    B, widths = 128, args.bptt_widths or s["widths"]
    u = torch.linspace(-20, 20, 400_001, dtype=torch.float64)
    err = float((model.ACTIVATIONS["tanh"](u.float()).double() - torch.tanh(u)).abs().max())
    table.check(f"tanh sigmoid_form_abs_err={err:.1e} tol=3e-7", err <= 3e-7)
    exact = functools.partial(mock.patch.object, model, "sigmoid_tanh", lambda v: False)
    for m, r in product(widths, args.bptt_r):
        cfgs = [StudentConfig(width=m, activation="tanh") for _ in range(r)]
        models = [
            StudentRNN(c, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(cfgs)
        ]
        params, cfg, _ = stack_students(models)
        gen = torch.Generator().manual_seed(m)
        x, y = (torch.randn(r, B, args.T, 1, generator=gen) for _ in range(2))
        ours = bptt_step(torch_forward, params, x, y, cfg, None)
        with torch.no_grad(), exact():
            y_exact = torch_forward(params, x, cfg)
        with torch.no_grad():
            rel = float((torch_forward(params, x, cfg) - y_exact).abs().max())
            rel /= float(y_exact.abs().max())
        setting = f"act=tanh m={m} r={r} T={args.T} B={B} dtype={cfg.dtype}"
        table.check(f"tanh {setting} out_rel={rel:.1e} tol=1e-5", rel <= 1e-5)

        base = bptt_step(torch_forward, params, x, y, cfg, None)
        base = functools.partial(exactly, exact, base)
        t_ours, t_base = side_by_side([ours, base], args.repeats, args.warmup, torch.device("cpu"))
        table.add("tanh", setting, t_ours, t_base)
