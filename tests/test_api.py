"""The public API (docs/api.md): analytic cases, the example, and `pip install -e .`."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from curse_memory import api, memory

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_is_documented():
    doc = (ROOT / "docs/api.md").read_text()
    missing = [name for name in api.__all__ if f"### `{name}" not in doc]
    assert not missing, missing
    assert all(hasattr(api, name) for name in api.__all__)


def test_memory_function_of_a_linear_target_tends_to_abs_rho():
    """The api's memory function is the workflow's estimator: on a linear target it gives
    |rho(t)| |x| / (|x| + 1), for a numpy map and for an nn.Module alike."""
    spec = api.TargetSpec(kernel="pol", T=100)
    t, mem = api.memory_function(spec.functional(), 200, amplitudes=[1e7])
    np.testing.assert_allclose(mem, spec.analytic_memory(t), rtol=0, atol=1e-6)
    t_wf, mem_wf = memory.memory_function(spec.functional(), 200, 1, 1.0, [1e7])
    np.testing.assert_array_equal(mem, mem_wf)  # one code path
    fit = api.memory_decay_fit(t, mem, t_min=10)
    assert fit["decay"] == "polynomial" and fit["rate_pol"] == pytest.approx(1.1, rel=0.2)

    class Linear(torch.nn.Module):  # the same functional as a module (float64 parameter)
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, x):
            assert x.dtype == torch.float64 and not torch.is_grad_enabled()
            return self.scale * torch.as_tensor(spec.functional()(x.numpy()))

    _, mem_module = api.memory_function(Linear(), 200, amplitudes=[1e7])
    np.testing.assert_allclose(mem_module, mem, rtol=1e-12, atol=0)


def gru_model(seed=0):
    torch.manual_seed(seed)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(1, 4, batch_first=True)
            self.readout = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.readout(self.gru(x)[0])

    return Model()


@pytest.mark.parametrize("norm", api.NORMS)
def test_perturbation_curve_at_zero_is_the_mse_and_leaves_the_module_unchanged(norm):
    model = gru_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 30, 1, generator=gen), torch.randn(16, 30, 1, generator=gen)
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model(x), y).item()
    betas = [0.0, 1e-3, 0.1, 1.0]
    curve = api.perturbation_curve(model, x, y, betas, repeats=5, norm=norm, generator=gen)
    assert curve["errors"].shape == (4, 5) and curve["beta"].tolist() == betas
    assert (curve["errors"][0] == mse).all() and curve["error"][0] == mse
    np.testing.assert_array_equal(curve["error"], curve["errors"].max(axis=1))
    assert (np.diff(curve["monotone"]) >= 0).all()
    assert np.abs(curve["errors"][1] - mse).max() < 0.05 * mse  # a small beta moves little
    assert curve["error"][3] > curve["error"][1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # bitwise restored
    again = api.perturbation_curve(
        model, x, y, betas, repeats=5, norm=norm, generator=torch.Generator().manual_seed(1)
    )
    common = api.perturbation_curve(model, x, y, betas, repeats=5, norm=norm,
                                    common_directions=True)  # fmt: skip
    assert common["errors"].shape == (4, 5)
    assert again["errors"].shape == (4, 5)


def test_perturbation_curve_draws_have_size_beta():
    """inf: every parameter tensor moves by max-abs beta; l2: the whole draw by norm beta."""
    model = torch.nn.Linear(3, 2)
    x, y = torch.zeros(1, 3), torch.zeros(1, 2)
    seen = []

    def record(out, target):
        seen.append([p.detach().clone() for p in model.parameters()])
        return out.pow(2).mean()

    base = [p.detach().clone() for p in model.parameters()]
    api.perturbation_curve(model, x, y, [0.25], repeats=3, norm="inf", loss=record)
    for draw in seen:
        for p, p0 in zip(draw, base, strict=True):
            assert (p - p0).abs().max().item() == pytest.approx(0.25, rel=1e-6)
    seen.clear()
    api.perturbation_curve(model, x, y, [0.25], repeats=3, norm="l2", loss=record)
    for draw in seen:
        total = sum((p - p0).pow(2).sum() for p, p0 in zip(draw, base, strict=True))
        assert total.sqrt().item() == pytest.approx(0.25, rel=1e-6)
    with pytest.raises(ValueError, match="inf, l2"):
        api.perturbation_curve(model, x, y, [0.1], norm="max")


@pytest.mark.slow
def test_pip_install_editable_then_the_example_runs(tmp_path):
    """`pip install -e .` into a fresh venv (offline: the pinned packages of .venv are
    reused through a .pth file, and the package is installed with --no-deps from a copy
    of pyproject.toml and the package), then examples/own_model.py runs against it from
    outside the repository."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(ROOT / "workflow/scripts/curse_memory", src / "workflow/scripts/curse_memory",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", src)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "reuse.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
               "--no-index", "-e", str(src)]  # fmt: skip
    subprocess.run(install, check=True, env=env, cwd=tmp_path)
    probe = "import curse_memory.api as a, importlib.metadata as m; print(a.__file__); "
    probe += "print(m.requires('curse-of-memory-workflow'))"
    out = subprocess.run([python, "-c", probe], check=True, env=env, cwd=tmp_path,
                         capture_output=True, text=True).stdout  # fmt: skip
    assert str(src) in out and "torch==2.13.0" in out
    run = subprocess.run([python, str(ROOT / "examples/own_model.py")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "memory decay" in run.stdout and "perturbation curve" in run.stdout
    assert "GRU" in run.stdout and "done in" in run.stdout


def test_package_dependencies_are_the_runtime_pins_torch_exactly():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = project["project"]["dependencies"]
    assert "torch==2.13.0" in deps  # never a range: an unpinned torch pulls CUDA
    names = {d.split("=")[0].strip().lower() for d in deps}
    workflow_tools = {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema", "pygments"}
    pins = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            pins.add(line.split("==")[0].lower())
    extras = {d.lower() for ds in project["project"]["optional-dependencies"].values() for d in ds}
    assert names <= pins, "a package dependency that requirements.txt does not pin"
    missing = pins - workflow_tools - names - extras
    assert not missing, f"runtime pins missing from pyproject.toml's dependencies: {missing}"
    assert project["tool"]["setuptools"]["package-dir"] == {"": "workflow/scripts"}
