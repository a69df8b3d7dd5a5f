"""Checkpoints of a training pack (train.checkpoint_every): a job killed mid-training and run
again resumes from its checkpoint and ends with the results of a run never interrupted,
bit for bit in float64."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from curse_memory.model import StudentConfig, StudentRNN
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import TrainConfig, TrainingInterruptedError, train_pack

SEEDS, KINDS = [1, 2, 3], ["pol", "exp", "pol"]


def datas() -> list[dict]:
    return [
        make_target(TargetSpec(kind="linear", kernel=k, T=16), 64, 32, 16, seed=s)
        for s, k in zip(SEEDS, KINDS, strict=True)
    ]


def run(student, train, data, path=None, stop_after=None, log=None, **kw):
    """The three seeds as one job: two sub-packs (copies 0-1, then 2) on the CPU; returns
    the results and the log."""
    log = io.StringIO() if log is None else log
    models = [
        StudentRNN(student, generator=torch.Generator().manual_seed(1000 * s + student.width))
        for s in SEEDS
    ]
    kw = {"target_losses": [1e6, 1e-30, None], "max_bytes": 2 * 16 * student.width * 8} | kw
    out = train_pack(
        models, data, train, [torch.Generator().manual_seed(s) for s in SEEDS], log=log,
        checkpoint=path, stop_after=stop_after, **kw,
    )  # fmt: skip
    return out, log.getvalue() if isinstance(log, io.StringIO) else ""


def assert_same(a: list, b: list) -> None:
    """Same parameters, histories and summaries (but for the wall time), bit for bit."""
    for (m1, h1, s1), (m2, h2, s2) in zip(a, b, strict=True):
        assert h1 == h2
        assert {k: v for k, v in s1.items() if k != "wall_s"} == {
            k: v for k, v in s2.items() if k != "wall_s"
        }
        for name, value in m1.raw_params().items():
            assert torch.equal(m2.raw_params()[name], value), name


STUDENT = StudentConfig(width=3, activation="tanh", dtype="float64")
TRAIN = TrainConfig(
    steps=50, monotone_steps=70, batch_size=16, eval_every=10, plateau_patience=1,
    early_stop_patience=3, weight_decay=0.01, time_weighting=True, log_every=1000,
    checkpoint_every=7, kernel="torch",
)  # fmt: skip


@pytest.mark.parametrize(
    ("train", "kills"),
    [
        (TRAIN, [23]),  # in the first sub-pack, its copy 0 stopped (target reached)
        (TRAIN, [30, 53]),  # killed twice: in the first sub-pack, then in the second
        (TrainConfig(**(vars(TRAIN) | {"kernel": "fused", "schedule": "cosine"})), [61]),
    ],
    ids=["torch-plateau", "torch-plateau-twice", "fused-cosine"],
)
def test_a_killed_pack_resumes_to_the_results_of_an_uninterrupted_run(tmp_path, train, kills):
    data = datas()
    reference, _ = run(STUDENT, train, data)
    path = tmp_path / "checkpoints" / "pack.pt"
    for k in kills:
        with pytest.raises(TrainingInterruptedError):
            run(STUDENT, train, data, path, stop_after=k)
        assert path.exists()
    resumed, log = run(STUDENT, train, data, path)
    assert "resuming from checkpoint" in log
    assert not path.exists(), "the checkpoint outlives a finished pack"
    assert list(path.parent.iterdir()) == [], "temporary files left behind"
    assert len({s["steps"] for _, _, s in reference}) > 1, "copies should stop apart"
    assert_same(resumed, reference)


def test_a_checkpoint_of_another_config_or_an_unreadable_one_is_ignored(tmp_path):
    data = datas()
    path = tmp_path / "pack.pt"
    with pytest.raises(TrainingInterruptedError):
        run(STUDENT, TRAIN, data, path, stop_after=20)
    other = TrainConfig(**(vars(TRAIN) | {"lr": 2e-2}))
    reference, _ = run(STUDENT, other, data)
    resumed, log = run(STUDENT, other, data, path)
    assert "is of another pack or config: ignored" in log
    assert "resuming" not in log and not path.exists()
    assert_same(resumed, reference)
    # other members (targets) are another pack too
    with pytest.raises(TrainingInterruptedError):
        run(STUDENT, TRAIN, data, path, stop_after=20)
    _, log = run(STUDENT, TRAIN, data, path, target_losses=[None, None, None])
    assert "ignored" in log
    path.write_bytes(b"not a checkpoint")
    resumed, log = run(STUDENT, other, data, path)
    assert "unreadable" in log
    assert_same(resumed, reference)


def test_only_checkpoint_every_changes_nothing_but_checkpoint_every_0_writes_none(tmp_path):
    data = datas()
    path = tmp_path / "pack.pt"
    off = TrainConfig(**(vars(TRAIN) | {"checkpoint_every": 0}))
    with pytest.raises(TrainingInterruptedError):
        run(STUDENT, off, data, path, stop_after=20)
    assert not path.exists()
    reference, _ = run(STUDENT, off, data, path)
    assert not path.exists()
    # a checkpoint written every 7 steps resumes a run that writes one every 5
    with pytest.raises(TrainingInterruptedError):
        run(STUDENT, TRAIN, data, path, stop_after=20)
    every5 = TrainConfig(**(vars(TRAIN) | {"checkpoint_every": 5, "log_every": 3}))
    resumed, log = run(STUDENT, every5, data, path)
    assert "resuming from checkpoint" in log and not path.exists()
    assert_same(resumed, reference)
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=-1)
    assert math.isfinite(reference[0][2]["val_loss"])


KILLER = """
import os, signal, sys
from test_resume import STUDENT, TRAIN, datas, run

class Log:  # SIGKILL, as a time limit or preemption would, once step 21 is checkpointed
    def write(self, text):
        if text.startswith("step 21: checkpoint"):
            os.kill(os.getpid(), signal.SIGKILL)
    def flush(self):
        pass

run(STUDENT, TRAIN, datas(), sys.argv[1], log=Log())
"""


def test_a_job_killed_by_sigkill_resumes_from_its_checkpoint(tmp_path):
    """The process of a job killed with SIGKILL mid-training (nothing of it runs after the
    signal); run again, it resumes from step 21 and ends as an uninterrupted run."""
    path = tmp_path / "pack.pt"
    here = Path(__file__).parent
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(here.parent / "workflow/scripts"), str(here)])
    }
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(path)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.exists()
    resumed, log = run(STUDENT, TRAIN, datas(), path)
    assert "after step 21 (0 sub-pack(s) done before)" in log and not path.exists()
    assert_same(resumed, run(STUDENT, TRAIN, datas())[0])
