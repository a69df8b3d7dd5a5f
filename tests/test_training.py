"""Packed training: r students in one batched model equal the same students trained alone."""

from __future__ import annotations

import io
import math

import pytest
import torch

from curse_memory.model import PARAMETERISATIONS, StudentConfig, StudentRNN
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import (
    PACK_BYTES,
    Cosine,
    Plateau,
    TrainConfig,
    mse,
    pack_limit,
    time_weights,
    train_pack,
    train_student,
)


def data_for(seed: int, kernel: str = "pol") -> dict:
    spec = TargetSpec(kind="linear", kernel=kernel, T=24)
    return make_target(spec, n_train=96, n_val=32, n_test=32, seed=seed)


def fresh(cfg: StudentConfig, seed: int) -> StudentRNN:
    return StudentRNN(cfg, generator=torch.Generator().manual_seed(1000 * seed + cfg.width))


def rel(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def pack_of_two(cfg: StudentConfig, train: TrainConfig, datas: list, targets: list) -> list:
    """Seeds 1 and 2 trained as one pack."""
    return train_pack(
        [fresh(cfg, 1), fresh(cfg, 2)],
        datas,
        train,
        [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        target_losses=targets,
        log=io.StringIO(),
    )


def trained_alone(cfg: StudentConfig, train: TrainConfig, seed: int, data, target) -> tuple:
    one = TrainConfig(**(vars(train) | {"target_loss": target}))
    gen = torch.Generator().manual_seed(seed)
    return train_student(fresh(cfg, seed), data, one, gen, log=io.StringIO())


SLOW = pytest.mark.slow  # the full suite runs them; make test-fast keeps one per activation
CASES = [
    ("diagonal", "direct", "tanh"),
    ("diagonal", "softplus", "hardtanh"),
    pytest.param("orthogonal", "exp", "tanh", marks=SLOW),
    ("diagonal", "direct", "linear"),
    pytest.param("dense", "direct", "tanh", marks=SLOW),
]


@pytest.mark.parametrize(("structure", "param", "activation"), CASES)
def test_pack_of_three_equals_three_students_trained_alone(structure, param, activation):
    """Stop step, history and final parameters agree to 1e-9 in float64; the copies have
    their own data (two targets, three seeds), target losses and stopping points."""
    cfg = StudentConfig(
        width=4, structure=structure, parameterisation=param, activation=activation,
        dtype="float64",
    )  # fmt: skip
    train = TrainConfig(
        steps=80, batch_size=16, eval_every=10, plateau_patience=1, early_stop_patience=3,
        weight_decay=0.01, time_weighting=True, log_every=1000,
    )  # fmt: skip
    seeds, kernels = [1, 2, 3], ["pol", "exp", "pol"]
    datas = [data_for(s, k) for s, k in zip(seeds, kernels, strict=True)]
    targets = [None, 1e-30, 1e6]  # no target, one never reached, one reached at once
    alone = []
    for s, d, t in zip(seeds, datas, targets, strict=True):
        cfg_t = TrainConfig(**(vars(train) | {"target_loss": t}))
        gen = torch.Generator().manual_seed(s)
        alone.append(train_student(fresh(cfg, s), d, cfg_t, gen, log=io.StringIO()))
    packed = train_pack(
        [fresh(cfg, s) for s in seeds],
        datas,
        train,
        [torch.Generator().manual_seed(s) for s in seeds],
        target_losses=targets,
        log=io.StringIO(),
    )
    assert len({s["steps"] for _, _, s in alone}) > 1, "copies should stop at different steps"
    for (m1, h1, s1), (m2, h2, s2) in zip(alone, packed, strict=True):
        assert s1["steps"] == s2["steps"] and s1["stop_reason"] == s2["stop_reason"]
        assert s1["best_step"] == s2["best_step"]
        assert [r["step"] for r in h1] == [r["step"] for r in h2]
        for key in ("train_loss", "val_loss", "lr", "min_eig"):
            assert rel([r[key] for r in h2], [r[key] for r in h1]) <= 1e-9, key
        for name, value in m1.raw_params().items():
            assert rel(m2.raw_params()[name].detach(), value.detach()) <= 1e-9, name
        assert math.isclose(s1["val_loss"], s2["val_loss"], rel_tol=1e-9)


@pytest.mark.parametrize("structure", ["diagonal", pytest.param("orthogonal", marks=SLOW)])
def test_pack_mixing_parameterisations_equals_each_student_alone(structure):
    params = ["direct", "softplus", "exp", "best"]
    train = TrainConfig(steps=60, batch_size=16, eval_every=10, log_every=1000)
    cfgs = [
        StudentConfig(width=3, structure=structure, parameterisation=p, activation="tanh",
                      dtype="float64")
        for p in params
    ]  # fmt: skip
    data = data_for(1)
    alone = [
        train_student(fresh(c, 1), data, train, torch.Generator().manual_seed(1), log=io.StringIO())
        for c in cfgs
    ]
    packed = train_pack(
        [fresh(c, 1) for c in cfgs],
        [data] * len(cfgs),
        train,
        [torch.Generator().manual_seed(1) for _ in cfgs],
        log=io.StringIO(),
    )
    for (m1, h1, _), (m2, h2, _) in zip(alone, packed, strict=True):
        assert m1.config == m2.config
        assert rel([r["min_eig"] for r in h2], [r["min_eig"] for r in h1]) <= 1e-9
        for name, value in m1.raw_params().items():
            assert rel(m2.raw_params()[name].detach(), value.detach()) <= 1e-9, name


def test_pack_drops_a_diverging_copy_and_keeps_training_the_others():
    cfg = StudentConfig(width=3, activation="tanh", dtype="float64")
    train = TrainConfig(steps=40, batch_size=16, eval_every=10, log_every=1000)
    datas = [data_for(1), data_for(2)]
    datas[1] = datas[1] | {"y_train": datas[1]["y_train"] * math.inf}
    log = io.StringIO()
    (m_ok, h_ok, s_ok), (_, h_bad, s_bad) = train_pack(
        [fresh(cfg, 1), fresh(cfg, 2)],
        datas,
        train,
        [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        log=log,
    )
    assert s_bad["stop_reason"] == "diverged" and s_bad["steps"] == 1 and not h_bad
    assert s_ok["stop_reason"] == "budget" and s_ok["steps"] == 40 and len(h_ok) == 4
    alone = train_student(
        fresh(cfg, 1), datas[0], train, torch.Generator().manual_seed(1), log=io.StringIO()
    )
    assert rel(m_ok.w.detach(), alone[0].w.detach()) <= 1e-9
    assert "[1] step 1: training loss is not finite" in log.getvalue()


def test_pack_rejects_different_student_configs():
    a = StudentRNN(StudentConfig(width=3))
    b = StudentRNN(StudentConfig(width=4))
    with pytest.raises(ValueError, match="equal student configs"):
        train_pack([a, b], [data_for(1)] * 2, TrainConfig(steps=2), [torch.Generator()] * 2)
    b = StudentRNN(StudentConfig(width=3, activation="tanh"))
    with pytest.raises(ValueError, match="equal student configs"):
        train_pack([a, b], [data_for(1)] * 2, TrainConfig(steps=2), [torch.Generator()] * 2)


def test_plateau_matches_torch_reduce_lr_on_plateau():
    losses = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.89999, 0.5, 0.6, 0.6, 0.6, 0.6]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=2, min_lr=1e-3)
    ours = Plateau(0.1, 0.1, 2, 1e-3)
    for loss in losses:
        sched.step(loss)
        assert math.isclose(ours.step(loss), opt.param_groups[0]["lr"])


def test_cosine_decays_from_lr_to_min_lr_over_the_budget_whatever_the_losses():
    c = Cosine(0.01, 1e-6, budget=200)
    assert math.isclose(c.at(0), 0.01) and math.isclose(c.at(200), 1e-6)
    assert math.isclose(c.at(100), (0.01 + 1e-6) / 2)
    assert c.at(500) == c.at(200)  # past the budget: min_lr
    lrs = [c.at(k) for k in range(201)]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert c.step(1.0) == c.step(1e9) == lrs[-1]  # validation losses change nothing
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")


def test_cosine_schedule_runs_over_each_copys_own_budget_packed_or_alone():
    """With width-monotone budgets the copies decay over different horizons (steps for one
    without a target, monotone_steps for one chasing a target); the pack trains each as
    it would be trained alone, and its history records the decayed learning rate."""
    cfg = StudentConfig(width=3, activation="hardtanh", dtype="float64")
    train = TrainConfig(
        steps=40, monotone_steps=80, batch_size=16, eval_every=10, early_stop_patience=0,
        schedule="cosine", log_every=1000,
    )  # fmt: skip
    datas, targets = [data_for(1), data_for(2, "exp")], [None, 1e-30]
    packed = pack_of_two(cfg, train, datas, targets)
    for (_, history, summary), budget in zip(packed, [40, 80], strict=True):
        assert summary["steps"] == budget
        for row in history:
            expect = Cosine(train.lr, train.min_lr, budget).at(row["step"])
            assert math.isclose(row["lr"], expect, rel_tol=1e-12)
        assert math.isclose(history[-1]["lr"], train.min_lr)
    for seed, data, target, (model, history, _) in zip([1, 2], datas, targets, packed, strict=True):
        m1, h1, _ = trained_alone(cfg, train, seed, data, target)
        assert [r["val_loss"] for r in h1] == pytest.approx([r["val_loss"] for r in history])
        assert rel(model.w.detach(), m1.w.detach()) <= 1e-9


def test_reference_init_draws_raw_w_from_a_standard_normal():
    cfg = StudentConfig(width=1000, init="reference")
    w = StudentRNN(cfg, generator=torch.Generator().manual_seed(0)).w.detach()
    assert abs(float(w.mean())) < 0.15 and abs(float(w.std()) - 1) < 0.1  # ~5 sigma
    assert 0.42 < float((torch.relu(w) == 0).double().mean()) < 0.58  # direct: half dead
    with pytest.raises(ValueError, match="init"):
        StudentConfig(width=2, init="xavier")


@pytest.mark.parametrize("family", ["rnn", "ssm"])
@pytest.mark.parametrize("param", ["direct", "softplus"])
def test_reference_init_with_the_orthogonal_structure(family, param):
    """init reference draws the raw w ~ N(0, 1) and keeps the orthogonal P of the uniform
    init; the diagonal student of the same seed gets the same w."""
    kwargs = {"width": 5, "init": "reference", "parameterisation": param, "family": family}
    gen = torch.Generator().manual_seed(3)
    model = StudentRNN(StudentConfig(structure="orthogonal", dtype="float64", **kwargs), gen)
    diagonal = StudentRNN(
        StudentConfig(dtype="float64", **kwargs), torch.Generator().manual_seed(3)
    )
    assert torch.equal(model.w, diagonal.w)
    P = model.P.detach()
    torch.testing.assert_close(P.T @ P, torch.eye(5, dtype=torch.float64))
    a = PARAMETERISATIONS[param].evaluate(model.w.detach(), model.config.eps)
    torch.testing.assert_close(model.eigenvalues(), torch.sort(a).values)
    x = torch.randn(4, 12, 1, generator=gen, dtype=torch.float64)
    assert model(x).shape == (4, 12, 1)
    data = data_for(1)
    train = TrainConfig(steps=3, batch_size=8, eval_every=1, log_every=1000)
    trained, history, _ = train_student(model, data, train, gen, log=io.StringIO())
    assert len(history) > 0 and math.isfinite(history[-1]["val_loss"])


def test_time_weights_follow_the_method_and_differ_from_the_reference_code():
    """train.time_weighting: squared errors weighted by ((k+1)/(T+1))^2 / mean (method §2);
    the reference code weights the outputs by (k+1)^2, i.e. squared errors by (k+1)^4."""
    T = 7
    w = time_weights(T, True).flatten()
    k = torch.arange(T, dtype=torch.float64)
    expected = ((k + 1) / (T + 1)) ** 2
    torch.testing.assert_close(w, expected / expected.mean(), rtol=1e-15, atol=0)
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-15)
    reference = (k + 1) ** 4
    assert not torch.allclose(w, reference / reference.mean())
    yhat, y = torch.zeros(1, T, 1, dtype=torch.float64), torch.ones(1, T, 1, dtype=torch.float64)
    assert float(mse(yhat, y, time_weights(T, True))) == pytest.approx(1.0)  # mean 1: unit error
    assert time_weights(T, False) is None


def test_monotone_steps_extend_the_budget_of_copies_chasing_a_target_only():
    """A copy with a width-monotone target trains up to monotone_steps, the others stop at
    steps; packed or alone, the same histories (validation also at the odd last step)."""
    cfg = StudentConfig(width=3, activation="tanh", dtype="float64")
    train = TrainConfig(
        steps=40, monotone_steps=75, batch_size=16, eval_every=10, early_stop_patience=0,
        log_every=1000,
    )  # fmt: skip
    datas, targets = [data_for(1), data_for(2)], [None, 1e-30]
    packed = pack_of_two(cfg, train, datas, targets)
    assert [s["steps"] for _, _, s in packed] == [40, 75]
    assert [r["step"] for r in packed[1][1]][-2:] == [70, 75]
    for seed, data, target, (model, history, _) in zip([1, 2], datas, targets, packed, strict=True):
        m1, h1, _ = trained_alone(cfg, train, seed, data, target)
        assert [r["step"] for r in h1] == [r["step"] for r in history]
        assert rel(model.w.detach(), m1.w.detach()) <= 1e-9
    with pytest.raises(ValueError, match="monotone_steps"):
        TrainConfig(steps=10, monotone_steps=5)


def test_packs_are_split_on_the_cpu_only():
    assert pack_limit("cpu") == PACK_BYTES
    assert pack_limit(torch.device("cuda")) > 2**40  # never split on a GPU
