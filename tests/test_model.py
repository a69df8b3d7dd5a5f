"""Students (method §2): recurrence vs a plain loop, eigenvalues, checkpoints, training."""

import io
import itertools
import math
import unittest.mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from curse_memory import model as model_module
from curse_memory.model import (
    ACTIVATIONS,
    PARAMETERISATIONS,
    STRUCTURES,
    StudentConfig,
    StudentRNN,
    eigenvalues,
    load_student,
    save_student,
    student_forward,
)
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import TrainConfig, evaluate, train_student

F64 = torch.float64

# f(w) written independently of the module: (training map, evaluation map)
REFERENCE_F = {
    "direct": (lambda w, eps: w.clamp(min=0), lambda w, eps: w),
    "exp": (lambda w, eps: torch.exp(w),) * 2,
    "softplus": (lambda w, eps: torch.log1p(torch.exp(w)),) * 2,
    "best": (lambda w, eps: 1.0 / (w**2 + eps),) * 2,
}
REFERENCE_ACT = {
    "linear": lambda v: v,
    "tanh": torch.tanh,
    "hardtanh": lambda v: v.clamp(-1.0, 1.0),
}


def reference_forward(params, x, cfg, raw=False):
    """h_{k+1} = h_k + dt sigma(U x_k + b - A h_k), y_k = c h_{k+1} + c0, A formed per step."""
    act = REFERENCE_ACT[cfg.activation]
    n, T, _ = x.shape
    h = torch.zeros(n, cfg.width, dtype=x.dtype)
    ys = []
    for k in range(T):
        if cfg.structure == "dense":
            A = params["A"]
        else:
            a = REFERENCE_F[cfg.parameterisation][1 if raw else 0](params["w"], cfg.eps)
            A = torch.diag(a)
            if cfg.structure == "orthogonal":
                A = params["P"] @ A @ params["P"].T
        h = h + cfg.dt * act(x[:, k] @ params["U"].T + params["b"] - h @ A.T)
        ys.append(h @ params["c"].T + params["c0"])
    return torch.stack(ys, dim=1)


def random_params(cfg, gen):
    """A student's raw parameters with every tensor nonzero (bias and c0 included)."""
    params = model_module.init_params(cfg, gen)
    params["b"] = 0.3 * torch.randn(params["b"].shape, generator=gen, dtype=F64)
    params["c0"] = torch.randn(params["c0"].shape, generator=gen, dtype=F64)
    params["U"] = 2.0 * params["U"]  # drive tanh and hardtanh into saturation
    return {k: v.clone().requires_grad_(True) for k, v in params.items()}


COMBOS = list(itertools.product(STRUCTURES, PARAMETERISATIONS, ACTIVATIONS))
TWO_IN_TWO_OUT = {"dt": 0.7, "d_in": 2, "d_out": 2, "dtype": "float64"}  # dt != 1, d = o = 2


@pytest.mark.parametrize(("structure", "parameterisation", "activation"), COMBOS)
def test_recurrence_equals_plain_loop_outputs_and_gradients(
    structure, parameterisation, activation
):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 12, 2, generator=gen, dtype=F64)
    fast_options = [True, False] if activation == "linear" else [True]
    for fast, raw in itertools.product(fast_options, [False, True]):
        cfg = StudentConfig(
            width=4,
            structure=structure,
            parameterisation=parameterisation,
            activation=activation,
            fast_linear=fast,
            **TWO_IN_TWO_OUT,
        )
        params = random_params(cfg, gen)
        y = student_forward(params, x, cfg, raw=raw)
        y_ref = reference_forward(params, x, cfg, raw=raw)
        assert y.shape == (3, 12, 2)
        assert (y - y_ref).abs().max() < 1e-10
        weights = torch.randn(y.shape, generator=gen, dtype=F64)
        names = list(params)
        grads = torch.autograd.grad((y * weights).sum(), [params[k] for k in names])
        grads_ref = torch.autograd.grad((y_ref * weights).sum(), [params[k] for k in names])
        for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
            assert (g - g_ref).abs().max() < 1e-10, name
            assert g_ref.abs().max() > 0 or name == "w", name  # every parameter matters
    if activation != "linear":
        assert y_ref.abs().max() > 0.5


@pytest.mark.parametrize(("structure", "parameterisation", "activation"), COMBOS)
def test_batched_parameters_equal_loop_over_copies(structure, parameterisation, activation):
    gen = torch.Generator().manual_seed(6)
    cfg = StudentConfig(
        width=3,
        structure=structure,
        parameterisation=parameterisation,
        activation=activation,
        d_in=2,
        dtype="float64",
    )
    base = {k: v.detach() for k, v in random_params(cfg, gen).items()}
    r = 4
    copies = {
        k: v.unsqueeze(0) + 0.05 * torch.randn((r, *v.shape), generator=gen, dtype=F64)
        for k, v in base.items()
    }
    x = torch.randn(2, 10, 2, generator=gen, dtype=F64)
    for raw in (False, True):
        y = student_forward(copies, x, cfg, raw=raw)
        assert y.shape == (r, 2, 10, 1)
        for i in range(r):
            single = {k: v[i] for k, v in copies.items()}
            y_single = student_forward(single, x, cfg, raw=raw)
            assert (y[i] - y_single).abs().max() < 1e-12
            assert (y[i] - reference_forward(single, x, cfg, raw=raw)).abs().max() < 1e-10
        assert (y[0] - y[1]).abs().max() > 1e-6  # the copies really differ


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("per_copy_inputs", [True, False])
def test_diagonal_recurrence_backward_equals_autograd_of_plain_loop(activation, per_copy_inputs):
    """The hand-written backward pass (r copies, diagonal rnn) against autograd through the
    plain loop, copy by copy: outputs and every gradient, with dt != 1, d = o = 2, mixed
    parameterisations, and inputs per copy (a pack) or shared (a perturbation sweep)."""
    gen = torch.Generator().manual_seed(7)
    r, n, T = 3, 4, 15
    maps = ["direct", "softplus", "direct"]
    cfgs = [
        StudentConfig(
            width=5, parameterisation=p, activation=activation, fast_linear=False, **TWO_IN_TWO_OUT
        )
        for p in maps
    ]
    singles = [random_params(cfg, gen) for cfg in cfgs]
    params = {k: torch.stack([p[k].detach() for p in singles]).requires_grad_() for k in singles[0]}
    shape = (r, n, T, 2) if per_copy_inputs else (n, T, 2)
    x = torch.randn(shape, generator=gen, dtype=F64)
    y = student_forward(params, x, cfgs[0], maps=maps)
    assert y.shape == (r, n, T, 2)
    weights = torch.randn(y.shape, generator=gen, dtype=F64)
    grads = torch.autograd.grad((y * weights).sum(), list(params.values()))
    with torch.no_grad():  # the forward pass that keeps two states only
        assert torch.equal(student_forward(params, x, cfgs[0], maps=maps), y.detach())
    for i, (cfg, single) in enumerate(zip(cfgs, singles, strict=True)):
        y_ref = reference_forward(single, x[i] if per_copy_inputs else x, cfg)
        assert (y[i] - y_ref).abs().max() < 1e-10
        grads_ref = torch.autograd.grad((y_ref * weights[i]).sum(), list(single.values()))
        for name, g, g_ref in zip(params, grads, grads_ref, strict=True):
            assert (g[i] - g_ref).abs().max() < 1e-10, name
            assert g_ref.abs().max() > 0, name  # every parameter matters
    if activation != "linear":
        assert y.abs().max() > 0.5


def test_float32_tanh_is_the_sigmoid_form_within_rounding_float64_is_torch_tanh():
    """float32 tanh on the CPU is 2 sigmoid(2u) - 1: within 2.5 ulp of 1 (3e-7) of the
    exact value; float64 is torch.tanh itself, with its relative precision near 0."""
    tanh = model_module.ACTIVATIONS["tanh"]
    u = torch.linspace(-20, 20, 400_001, dtype=F64)
    assert (tanh(u.float()).double() - torch.tanh(u)).abs().max() <= 3e-7
    assert torch.equal(tanh(u), torch.tanh(u))
    tiny = torch.tensor([1e-30, -1e-200], dtype=F64)
    assert torch.equal(tanh(tiny), tiny)
    assert model_module.sigmoid_tanh(u.float()) and not model_module.sigmoid_tanh(u)


@pytest.mark.parametrize("per_copy_inputs", [True, False])
def test_float32_tanh_pack_agrees_with_float64_to_float32_rounding(per_copy_inputs):
    """The float32 tanh pack (sigmoid form in the loop, its own backward) against the
    float64 plain loop (torch.tanh, autograd): outputs and gradients as close as the
    float32 loop with torch.tanh gets them, and within 1e-5 of their scale."""
    gen = torch.Generator().manual_seed(9)
    r, n, T = 3, 16, 60
    cfg64 = StudentConfig(width=6, activation="tanh", fast_linear=False, dtype="float64")
    singles = [random_params(cfg64, gen) for _ in range(r)]
    x = torch.randn((r, n, T, 1) if per_copy_inputs else (n, T, 1), generator=gen, dtype=F64)
    weights = torch.randn(r, n, T, 1, generator=gen, dtype=F64)
    y_ref = torch.stack(
        [reference_forward(p, x[i] if per_copy_inputs else x, cfg64) for i, p in enumerate(singles)]
    )
    names = list(singles[0])
    ref = [y_ref.detach()]
    ref += torch.autograd.grad((y_ref * weights).sum(), [p[k] for p in singles for k in names])
    ref = ref[:1] + [torch.stack(ref[1 + j :: len(names)]) for j in range(len(names))]
    cfg32 = StudentConfig(width=6, activation="tanh", fast_linear=False, dtype="float32")

    def pack32():
        params = {k: torch.stack([p[k].detach() for p in singles]).float() for k in names}
        params = {k: v.requires_grad_() for k, v in params.items()}
        y = student_forward(params, x.float(), cfg32)
        grads = torch.autograd.grad((y * weights.float()).sum(), list(params.values()))
        return [t.double() for t in (y, *grads)]

    fast = pack32()
    with unittest.mock.patch.object(model_module, "sigmoid_tanh", lambda v: False):
        exact = pack32()
    for name, f, e, g in zip(["y", *names], fast, exact, ref, strict=True):
        scale = g.abs().max()
        assert (f - g).abs().max() <= max(4 * (e - g).abs().max(), 1e-6 * scale), name
        assert (f - g).abs().max() <= 1e-5 * scale, name


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_diagonal_recurrence_passes_gradcheck(activation):
    gen = torch.Generator().manual_seed(8)
    r, m, d = 2, 4, 2
    x = torch.randn(r, 3, 6, d, generator=gen, dtype=F64)
    shapes = {"U": (r, m, d), "b": (r, m), "a": (r, m), "c": (r, 2, m)}
    tensors = [torch.randn(v, generator=gen, dtype=F64) for v in shapes.values()]
    tensors[2] = tensors[2].abs().requires_grad_()  # a > 0
    tensors = [t.requires_grad_() for t in tensors]
    fn = model_module.DiagonalRecurrence.apply
    assert torch.autograd.gradcheck(lambda *t: fn(x, *t, 0.5, activation, True), tensors)


def test_model_forward_uses_training_map():
    gen = torch.Generator().manual_seed(7)
    cfg = StudentConfig(width=3, dtype="float64")
    model = StudentRNN(cfg, generator=gen)
    with torch.no_grad():
        model.w[0] = -0.4  # relu(w) = 0 in training, w itself at evaluation
    x = torch.randn(2, 15, 1, generator=gen, dtype=F64)
    params = model.raw_params()
    with torch.no_grad():
        assert (model(x) - reference_forward(params, x, cfg, raw=False)).abs().max() < 1e-12
        assert (model(x) - student_forward(params, x, cfg, raw=True)).abs().max() > 1e-6


# ------------------------------------------------------------------ eigenvalues of A
STABLE = ["exp", "softplus", "best"]


@settings(max_examples=60, deadline=None)
@given(
    parameterisation=st.sampled_from(STABLE),
    w=st.lists(st.floats(-50, 50, allow_nan=False, allow_infinity=False), min_size=1, max_size=6),
)
def test_stable_parameterisations_give_positive_eigenvalues(parameterisation, w):
    cfg = StudentConfig(width=len(w), parameterisation=parameterisation, dtype="float64")
    params = {"w": torch.tensor(w, dtype=F64)}
    for raw in (False, True):
        eig = eigenvalues(params, cfg, raw=raw)
        assert (eig > 0).all()
        assert torch.isfinite(eig).all()
    if parameterisation == "best":
        assert (eigenvalues(params, cfg) <= 1 / cfg.eps + 1e-12).all()


@pytest.mark.parametrize("parameterisation", STABLE)
def test_stable_parameterisations_dense_sweep(parameterisation):
    for dtype in ("float64", "float32"):
        cfg = StudentConfig(width=2001, parameterisation=parameterisation, dtype=dtype)
        w = torch.linspace(-50, 50, 2001, dtype=cfg.torch_dtype)
        assert (eigenvalues({"w": w}, cfg) > 0).all()
    # orthogonal structure, raw P perturbed off the orthogonal group: P diag(a) P^T stays > 0
    gen = torch.Generator().manual_seed(8)
    cfg = StudentConfig(
        width=5, structure="orthogonal", parameterisation=parameterisation, dtype="float64"
    )
    for _ in range(50):
        params = model_module.init_params(cfg, gen)
        params["w"] = 6 * torch.rand(5, generator=gen, dtype=F64) - 3
        params["P"] = params["P"] + 0.3 * torch.randn(5, 5, generator=gen, dtype=F64)
        assert (eigenvalues(params, cfg) > 0).all()


def test_direct_eigenvalue_goes_negative_under_raw_perturbation():
    gen = torch.Generator().manual_seed(9)
    cfg = StudentConfig(width=4, dtype="float64")
    model = StudentRNN(cfg, generator=gen)
    assert (model.eigenvalues(raw=True) > 0).all()
    with torch.no_grad():
        model.w.sub_(1.5)  # eigenvalues in [0.2, 1] -> [-1.3, -0.5]
    assert (model.eigenvalues(raw=True) < 0).all()
    assert (model.eigenvalues(raw=False) == 0).all()  # the training map hides it
    assert model.stability_margin() < 0
    for name in STABLE:
        stable = StudentRNN(StudentConfig(width=4, parameterisation=name, dtype="float64"))
        with torch.no_grad():
            stable.w.sub_(1.5)
        assert (stable.eigenvalues(raw=True) > 0).all()


def test_initial_eigenvalues_follow_eig_init():
    for name, structure in itertools.product(PARAMETERISATIONS, STRUCTURES):
        cfg = StudentConfig(
            width=6,
            structure=structure,
            parameterisation=name,
            eig_init=(0.3, 0.9),
            dtype="float64",
        )
        eig = StudentRNN(cfg, generator=torch.Generator().manual_seed(1)).eigenvalues()
        assert ((eig > 0.3 - 1e-9) & (eig < 0.9 + 1e-9)).all(), (name, structure, eig)


# ------------------------------------------------------------------ config, checkpoints
@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("structure", STRUCTURES),
        ("parameterisation", PARAMETERISATIONS),
        ("activation", ACTIVATIONS),
        ("dtype", model_module.DTYPES),
    ],
)
def test_unknown_student_names_raise_with_allowed_list(key, allowed):
    with pytest.raises(ValueError) as info:
        StudentConfig(width=2, **{key: "nonsense"})
    for name in allowed:
        assert name in str(info.value)


def test_invalid_student_config_raises():
    with pytest.raises(ValueError):
        StudentConfig(width=0)
    with pytest.raises(ValueError):
        StudentConfig(width=2, eig_init=(0.5, 2.5))  # beyond the Euler bound 2/dt
    with pytest.raises(ValueError):
        StudentConfig(width=2, parameterisation="best", eps=1.0, eig_init=(0.2, 1.5))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_names_the_file_and_the_way_out(tmp_path, damage):
    path = tmp_path / "model.pt"
    save_student(path, StudentRNN(StudentConfig(width=3)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint")
    with pytest.raises(ValueError, match="model.pt: cannot be read") as err:
        load_student(path)
    assert "delete it and rerun" in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_student(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    ("structure", "parameterisation", "activation", "dtype"),
    [
        ("diagonal", "direct", "linear", "float32"),
        ("orthogonal", "best", "tanh", "float64"),
        ("dense", "exp", "hardtanh", "float32"),
    ],
)
def test_checkpoint_round_trip(tmp_path, structure, parameterisation, activation, dtype):
    cfg = StudentConfig(
        width=5,
        structure=structure,
        parameterisation=parameterisation,
        activation=activation,
        eig_init=(0.25, 0.75),
        dtype=dtype,
    )
    model = StudentRNN(cfg, generator=torch.Generator().manual_seed(2))
    path = tmp_path / "student.pt"
    save_student(path, model, width=5, note="round trip")
    loaded, checkpoint = load_student(path)
    assert loaded.config == cfg
    assert checkpoint["note"] == "round trip" and checkpoint["width"] == 5
    x = torch.randn(3, 20, 1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]) and v.dtype == cfg.torch_dtype


# ------------------------------------------------------------------ training
def small_data(kernel="exp", seed=0):
    return make_target(TargetSpec(kernel=kernel, T=20), 64, 32, 32, seed=seed)


def test_train_student_reduces_val_loss_and_projects_direct():
    data = small_data()
    gen = torch.Generator().manual_seed(0)
    model = StudentRNN(StudentConfig(width=4, dtype="float64"), generator=gen)
    with torch.no_grad():
        model.w[0] = -0.3  # a dead unit: relu(w) = 0, no gradient; training keeps w < 0
    initial = evaluate(model, data["x_val"], data["y_val"])
    cfg = TrainConfig(steps=80, batch_size=32, eval_every=10, log_every=1000)
    model, history, summary = train_student(model, data, cfg, gen, log=io.StringIO())
    assert summary["val_loss"] < 0.5 * initial
    assert len(history) == 8
    assert [row["step"] for row in history] == list(range(10, 81, 10))
    assert set(history[0]) == {"step", "train_loss", "val_loss", "lr", "min_eig"}
    assert min(row["val_loss"] for row in history) == pytest.approx(summary["val_loss"])
    assert (model.w >= 0).all()  # projected
    assert model.w[0] == 0
    assert summary["min_eig"] >= 0 and summary["max_eig"] < 2
    assert summary["stop_reason"] == "budget" and summary["monotone_ok"] is None
    assert not summary["diverged"]


def test_train_student_target_loss():
    data = small_data()
    cfg_model = StudentConfig(width=3, dtype="float64")
    log = io.StringIO()

    gen = torch.Generator().manual_seed(1)
    loose = TrainConfig(steps=200, batch_size=32, eval_every=10, target_loss=1e6)
    model = StudentRNN(cfg_model, generator=gen)
    _, history, summary = train_student(model, data, loose, gen, log=log)
    assert summary["stop_reason"] == "target_loss"
    assert summary["monotone_ok"] is True
    assert summary["steps"] == 10 and len(history) == 1

    gen = torch.Generator().manual_seed(1)
    impossible = TrainConfig(steps=40, batch_size=32, eval_every=10, target_loss=1e-30)
    model = StudentRNN(cfg_model, generator=gen)
    _, _, summary = train_student(model, data, impossible, gen, log=log)
    assert summary["stop_reason"] != "target_loss"
    assert summary["monotone_ok"] is False
    assert summary["target_loss"] == 1e-30


def test_train_student_is_deterministic():
    data = small_data(kernel="pol")
    states = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(4)
        cfg = StudentConfig(width=3, structure="orthogonal", activation="tanh", dtype="float64")
        model = StudentRNN(cfg, generator=gen)
        train = TrainConfig(steps=30, batch_size=16, eval_every=10, time_weighting=True)
        model, _, _ = train_student(model, data, train, gen, log=io.StringIO())
        states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_time_weights_have_mean_one():
    from curse_memory.training import time_weights

    w = time_weights(10, True)
    assert w.shape == (10, 1)
    assert float(w.mean()) == pytest.approx(1.0)
    assert torch.all(w[1:] > w[:-1])
    assert time_weights(10, False) is None
    assert math.isclose(float(w[0] / w[-1]), (1 / 10) ** 2)
