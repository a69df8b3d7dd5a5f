"""Section ``rss``: the peak RSS of a training job at m=64, in a child process."""

from __future__ import annotations

import io
import resource
import subprocess
import sys
from pathlib import Path

import torch

from bench.common import ROOT, RSS_TARGET_MB, Table, make_student
from curse_memory.targets import TargetSpec, make_target
from curse_memory.training import TrainConfig, evaluate, train_student


def rss_child(args) -> None:
    """In a fresh process: one training job at m=64 sized like the default workflow's
    (1,024/256/512 sequences, batch 128, T=100, tanh), then print its peak RSS in MB."""
    spec = TargetSpec(kind="linear", kernel="pol", kernel_params={"s": 0.1, "p": 1.1}, T=args.T)
    data = make_target(spec, n_train=1024, n_val=256, n_test=512, seed=0)
    student = make_student(64, "tanh", seed=1)
    cfg = TrainConfig(steps=args.rss_steps, batch_size=128, eval_every=25)
    student, _, _ = train_student(
        student, data, cfg, torch.Generator().manual_seed(0), log=io.StringIO()
    )
    evaluate(student, data["x_test"], data["y_test"])
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    exec, so a child forked from a large parent would report the parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_rss(args, table: Table) -> None:
    """Peak RSS of a training job at m=64, measured in a child process."""
    cmd = [sys.executable, str(ROOT / "bench" / "benchmark.py"), "--rss-child"]
    cmd += ["--threads", str(args.threads), "--T", str(args.T), "--rss-steps", str(args.rss_steps)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        table.note("rss", f"status=child_failed rc={done.returncode}")
        print(done.stderr, file=sys.stderr)
        return
    peak = float(done.stdout.split()[-1])
    table.note(
        "rss",
        f"act=tanh m=64 structure=orthogonal steps={args.rss_steps} batch=128 T={args.T} "
        f"peak_rss_mb={peak:.1f} target_mb={RSS_TARGET_MB:.0f} "
        f"met={'yes' if peak < RSS_TARGET_MB else 'no'}",
    )
