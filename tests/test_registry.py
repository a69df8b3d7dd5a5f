"""The families' registry: a family defined here, at test time, runs through the student
module, checkpoints, packing, perturbation and memory functions without touching another
file (adding a family = one module and one ``register`` line); what the registry refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from curse_memory import families
from curse_memory.families import gated
from curse_memory.memory import decay_fit, student_memories
from curse_memory.model import (
    StudentConfig,
    StudentRNN,
    copies,
    eigenvalues,
    init_params,
    load_student,
    save_student,
    stack_students,
    student_forward,
)
from curse_memory.perturbation import batched_mse, perturbation_sweep, perturbed_masks

F64 = torch.float64


class ScalarDecay(families.Family):
    """A linear RNN with one shared decay: h_{k+1} = q h_k + U x_k, q = exp(-exp(v)) in
    (0, 1), yhat_k = c h_{k+1} (no c0: a family perturbs what it has)."""

    name = "scalar_decay"
    batch_key = "U"

    def init(self, cfg, generator=None):
        m, d, o = cfg.width, cfg.d_in, cfg.d_out
        return {
            "v": torch.log(torch.tensor([cfg.dt * cfg.eig_init[0]], dtype=F64)),
            "U": torch.randn(m, d, generator=generator, dtype=F64),
            "c": torch.randn(o, m, generator=generator, dtype=F64) / math.sqrt(m),
        }

    def eigenvalues(self, params, cfg, raw=True, maps=None):
        q = torch.exp(-torch.exp(params["v"]))  # ([r,] 1)
        return (1 - q).expand(*q.shape[:-1], params["U"].shape[-2]) / cfg.dt

    def forward(self, params, x, cfg, raw=False, maps=None, kernel=None):
        q, U, c = torch.exp(-torch.exp(params["v"])), params["U"], params["c"]
        batched = U.dim() == 3
        if batched:
            x = x if x.dim() == 4 else x.expand(U.shape[0], *x.shape)
            z = torch.einsum("rbtd,rmd->rbtm", x, U)
            q = q[:, None, :]  # (r, 1, 1)
        else:
            z = torch.einsum("btd,md->btm", x, U)
        h, states = torch.zeros_like(z[..., 0, :]), []
        for k in range(z.shape[-2]):
            h = q * h + z[..., k, :]
            states.append(h)
        states = torch.stack(states, dim=-2)
        return torch.einsum("...btm,...om->...bto", states, c)


@pytest.fixture(scope="module")
def family():
    yield families.register(ScalarDecay)
    families._REGISTRY.pop(ScalarDecay.name)  # the other tests see the built-ins only


def test_a_family_registered_at_test_time_is_a_student(family, tmp_path):
    assert "scalar_decay" in families.names() and families.get("scalar_decay") is family
    cfg = StudentConfig(width=3, d_in=2, d_out=2, dtype="float64", family="scalar_decay")
    assert (cfg.structure, cfg.parameterisation, cfg.activation) == ("none",) * 3
    assert not cfg.has_axes and not cfg.convolution
    model = StudentRNN(cfg, torch.Generator().manual_seed(0))
    assert set(model.raw_params()) == {"v", "U", "c"}
    x = torch.randn(4, 10, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert model(x).shape == (4, 10, 2)
    assert 0 < model.stability_margin() < 2  # the decay 1 - q as an eigenvalue
    path = tmp_path / "student.pt"
    save_student(path, model)
    loaded, _ = load_student(path)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_packing_a_registered_family_equals_one_student_at_a_time(family):
    cfg = StudentConfig(width=3, d_in=2, d_out=1, dtype="float64", family="scalar_decay")
    gen = torch.Generator().manual_seed(2)
    models = [StudentRNN(cfg, gen) for _ in range(3)]
    params, stacked_cfg, _ = stack_students(models)
    assert copies(params, stacked_cfg) == 3 and copies(init_params(cfg), cfg) is None
    assert eigenvalues(params, cfg).shape == (3, 3)
    x = torch.randn(5, 8, 2, generator=gen, dtype=F64)
    with torch.no_grad():
        both = student_forward(params, x, stacked_cfg)
        for i, model in enumerate(models):
            torch.testing.assert_close(both[i], model(x), rtol=1e-12, atol=1e-12)


def test_a_registered_family_is_perturbed_and_its_memory_estimated(family):
    cfg = StudentConfig(width=4, d_in=1, d_out=1, dtype="float64", family="scalar_decay")
    model = StudentRNN(cfg, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(16, 12, 1, generator=gen, dtype=F64)
    y = torch.randn(16, 12, 1, generator=gen, dtype=F64)
    params = {k: v.detach() for k, v in model.raw_params().items()}
    assert perturbed_masks(params, cfg) == dict.fromkeys(params)  # every raw entry
    rows = perturbation_sweep(model, x, y, [0.0, 0.01, 0.5], 4, "inf", gen)
    assert [r["beta"] for r in rows] == [0.0, 0.01, 0.5]
    assert math.isclose(rows[0]["error"], float(batched_mse(params, x, y, cfg)[0]))
    assert all(len(r["errors"]) == (1 if r["beta"] == 0 else 4) for r in rows)
    assert rows[0]["n_eig_negative"] == 0 and rows[0]["max_abs_lambda"] is None
    t, (memory,) = student_memories([model], 200, [1.0, 10.0])
    assert memory.shape == t.shape == (199,) and np.isfinite(memory).all()
    assert decay_fit(t, memory, t_min=2.0)["decay"] == "exponential"


def test_the_registry_refuses_an_incomplete_family_or_a_taken_name():
    class NoForward(families.Family):
        name, batch_key = "no_forward", "U"

        def init(self, cfg, generator=None):
            return {}

    with pytest.raises(ValueError, match="lacks forward"):
        families.register(NoForward)

    class Impostor(ScalarDecay):
        name = "lru"

    with pytest.raises(ValueError, match="taken"):
        families.register(Impostor)

    class BadName(ScalarDecay):
        name = "Bad/Name"

    with pytest.raises(ValueError, match="does not match"):
        families.register(BadName)
    with pytest.raises(ValueError, match="unknown family 'nope'; allowed: rnn, ssm, lru"):
        families.get("nope")
    assert "no_forward" not in families.names() and families.get("lru").name == "lru"


@pytest.mark.parametrize("family_name", ["lstm", "gru"])
def test_gated_copies_split_into_calls_equal_one_call(family_name, monkeypatch):
    """The gated cells' packing limit (families.gated.PACK_WIDTH): calls of 2 copies then
    1 give what one call of all copies gives."""
    cfg = StudentConfig(width=3, d_in=2, d_out=2, dtype="float64", family=family_name)
    gen = torch.Generator().manual_seed(5)
    params, _, _ = stack_students([StudentRNN(cfg, gen) for _ in range(3)])
    x = torch.randn(4, 8, 2, generator=gen, dtype=F64)
    with torch.no_grad():
        one_call = student_forward(params, x, cfg)
        monkeypatch.setattr(gated, "PACK_WIDTH", 6)
        split = student_forward(params, x, cfg)
    torch.testing.assert_close(split, one_call, rtol=1e-12, atol=1e-12)
