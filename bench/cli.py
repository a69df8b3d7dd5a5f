"""Speed benchmark of the shared module, measured side by side with a naive baseline.

Run as ``PYTHONPATH=workflow/scripts python bench/benchmark.py`` (``make bench``).
Every measurement is printed as one machine-readable line,

    <measurement> key=value ... ours=<ms> ms baseline=<ms> ms ratio=<x>x

(medians over repeats; ``ratio`` = baseline / ours) and written to ``--out`` as a TSV
with the columns measurement, setting, ours_ms, baseline_ms, ratio. Lines starting with
``check`` report the equivalence checks run before timing; a failed check makes the
script exit with status 1 after writing the table.

Sections:

1. ``train_step``: forward + backward + AdamW step on one batch. Ours is ``StudentRNN``
   (orthogonal structure A = P diag(f(w)) P^T, float32, default settings; for the linear
   activation both the convolution path ``fast_linear=True`` and the loop). The baseline
   is written here after the reference implementation (radarFudan/Curse-of-memory,
   ``SimpleRNN`` with its linear encoder and decoder): the input projection U x + b for
   the whole sequence, then per step a slice ``z[:, i:i+1, :]`` of it, A applied as three
   operations (h @ P, * f(w), @ P^T), the states appended to a list and ``torch.cat``-ed,
   the readout on the concatenated states; float64.
2. ``sweep``: a perturbation sweep of a briefly trained student, ``batched=True``
   against the same draws one by one (``batched=False``); and, on the first few betas,
   against the baseline evaluating the same draws one at a time in float64 (the
   reference's way). The two modes alternate beta by beta, so both see the same load.
3. ``scaling``: time per training step as T doubles and as m doubles, and the fitted
   exponents (slope of log time against log T or log m), ours and the baseline's.
4. ``rss``: the peak RSS of a training job at m=64, run in a child process.
5. ``e2e``: the summed job seconds, the peak memory of the m=64 training jobs and the
   wall clock of the last Snakemake run, from its benchmark files and logs.
6. ``pack``: packed training (``train_pack``, r students as one batched model) against
   one student per job, r in ``--pack-r`` (1, 4, 12, 48), all r of one student shape
   timed in turn within every repeat. Shapes: the default config's (diagonal, its
   activations, widths and dtype) and the paper config's tanh students in float64.
   Measured: the start-up of a job's Python process (median of 3 fresh interpreters
   importing torch, pandas, numpy and scipy.stats, once per run; ``--startup-s`` gives
   it instead) and the seconds per step of ``train_pack`` without early stopping, from
   the packs' own wall clocks (set-up, steps and validation passes; not the final
   evaluation), over ``--pack-steps`` steps, on ``make_target`` data (1,024 training
   sequences; the config's validation rate, n_val sequences every eval_every steps, as
   one batch every eval_every*batch/n_val steps). Modelled: a job of S steps (``--job-steps``,
   default the default config's budget) takes startup + S x step(r), so a ``pack`` line's
   ours = (startup + S step(r)) / (r S), its baseline = (startup + S step(1)) / S, per
   student and step. Every r is timed as one pack (max_bytes = r x batch x m x itemsize,
   the hidden states of one step: 4 bytes a value in float32, 8 in float64) and, when the
   workflow's default ``PACK_BYTES`` splits it (``packs=`` > 1), also with that.
   ``pack-step`` lines give the same without start-up: step(r) / r against step(1).
7. ``gpu`` (with CUDA only; else one ``gpu skipped`` line): the packed step time per
   student on the GPU for r in ``--gpu-r`` (1, 12, 48, 192), one pack, same shapes and
   settings as ``pack``, against one student (r=1) on the GPU; no start-up.
8. ``bptt``: one forward + backward pass of a pack of r diagonal students (the default
   config's nonlinear activations and widths, float32, batch 128, r in ``--bptt-r``, each
   copy on its own batch, as in packed training), ours (``student_forward``: the
   hand-written backward pass of ``DiagonalRecurrence``) against autograd through the
   same Euler loop, written here (one small readout product per step, as ours). Checked
   first in float64: equal loss and gradients.
9. ``tanh``: the same forward + backward pass of a float32 tanh pack as ``bptt``, with
   tanh computed as 2 sigmoid(2u) - 1 (what the workflow does in float32 on the CPU:
   ``model.sigmoid_tanh``) against ``torch.tanh``; checked first: the outputs agree to
   1e-5 of their scale, and the sigmoid form is within 3e-7 of float64 tanh.
10. ``project``: the projected wall time of a config's grid (``--project-config``,
   default config/paper.yaml) on ``--project-cores`` (2 and 16), packed (``pack_by``:
   ``--project-pack-by``, else the config's train.pack_by, else target and seed)
   against one student per job. The jobs and their dependencies are the workflow's own:
   ``snakemake -n`` of the config (with that pack_by, and with none) in an empty
   directory lists every training, perturbation and memory job with its wildcards
   (family and every other axis), files and students (``bench/sections/project.py``);
   a job waits for the jobs that write its inputs (width monotonicity included);
   targets, aggregation and figures (the same either way) are left out. Measured, for
   every family x structure x activation x width of those training jobs (the config's
   dtype, its first parameterisation: the map f costs next to nothing): the seconds per
   step at r=1 and at each r of the packed jobs, as in ``pack`` over ``--project-steps``
   steps, with the workflow's default PACK_BYTES (wide packs run as sub-packs in turn);
   one ``perturbation_sweep`` of the r=1 student so trained, over beta=0 and the first
   ``--project-sweep-betas`` nonzero betas of the config's grid, its repeats and
   ``--project-sweep-n`` test sequences, then scaled linearly in evaluated copies x
   sequences to the config's full grid, n_test and number of norms; the memory estimate
   (as ``estimate_student_memory``: float64 time loop over the config's Heaviside inputs
   and full horizon, all students of the job in one pass, then each tail fit) of the r=1
   student and of the r students. Modelled: a training job of r students takes startup
   + steps x step(r), with the config's whole step budget (early stopping and
   width-monotone targets ignored: an upper bound); a perturbation job startup + r x the
   sweep; a memory job (every width of a pack, as in the workflow) startup + the
   measured memory times of the students of the training jobs it waits for. The DAG
   runs through a greedy list scheduler on P cores, one job per core: a free core takes
   the ready job with the longest path to the end. Hours in ``project`` lines; the
   measured figures in ``project-measure`` lines.

The machine may be shared: ratios are measured side by side, and ``--clock cpu`` times
this process's CPU time instead of the elapsed time (not in ``pack``, ``gpu`` and
``project``, which time wall seconds as a job pays them).

"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from bench import common
from bench.common import ROOT, Table, read_config
from bench.sections.bptt import bench_bptt
from bench.sections.e2e import bench_e2e
from bench.sections.gpu import bench_gpu
from bench.sections.kernel import bench_kernel
from bench.sections.pack import STARTUP_IMPORTS, bench_pack, measure_startup
from bench.sections.project import bench_project
from bench.sections.rss import bench_rss, rss_child
from bench.sections.scaling import bench_scaling
from bench.sections.sweep import bench_sweep
from bench.sections.tanh import bench_tanh
from bench.sections.train import bench_train_steps
from curse_memory.perturbation import beta_grid

SECTIONS = (
    "train",
    "sweep",
    "scaling",
    "rss",
    "e2e",
    "pack",
    "gpu",
    "bptt",
    "tanh",
    "kernel",
    "project",
)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench" if sys.argv[0].endswith("__main__.py") else None,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: fewer repeats and sizes")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="training-step lines: auto = cpu, plus cuda when available",
    )
    p.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall: elapsed time; cpu: this process's CPU time, robust to other load on "
        "the machine (CPU devices only)",
    )
    p.add_argument(
        "--sections",
        nargs="+",
        default=list(SECTIONS),
        help=f"subset of {', '.join(SECTIONS)} (space- or comma-separated)",
    )
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/bench.tsv"))
    p.add_argument("--widths", type=int_list, help="training-step widths (default 8,16,32,64)")
    p.add_argument("--batch", type=int, default=512, help="sequences per training step")
    p.add_argument("--T", type=int, default=100, help="sequence length")
    p.add_argument("--repeats", type=int, help="timed repeats per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    p.add_argument("--sweep-widths", type=int_list, help="default 8,64")
    p.add_argument("--sweep-betas", type=int, help="first betas of the grid (default all 22)")
    p.add_argument("--sweep-draws", type=int, help="draws per beta (default 30)")
    p.add_argument("--sweep-n", type=int, help="test sequences (default 2048)")
    p.add_argument(
        "--ref-sweep-betas",
        type=int,
        help="betas for the sweep against the float64 baseline one by one (default 4; 0 skips)",
    )
    p.add_argument("--sweep-train-steps", type=int, help="training steps of the swept student")
    p.add_argument("--scaling-T", type=int_list, help="default 100,200,400")
    p.add_argument("--scaling-m", type=int_list, help="default 8,16,32,64")
    p.add_argument("--scaling-fixed-m", type=int, default=32, help="m while T varies")
    p.add_argument("--scaling-repeats", type=int, help="timed repeats per scaling point")
    p.add_argument("--rss-steps", type=int, help="training steps of the RSS job (default 100)")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--startup-s", type=float, help="job start-up seconds (default: measured)")
    p.add_argument("--pack-steps", type=int, help="timed steps per pack (default 60)")
    p.add_argument("--pack-r", type=int_list, default=[1, 4, 12, 48], help="students per pack")
    p.add_argument("--pack-widths", type=int_list, help="widths (default: the configs')")
    p.add_argument("--pack-repeats", type=int, help="timed repeats per pack (default 3)")
    p.add_argument("--job-steps", type=int, help="steps of a job (default: config.yaml's)")
    p.add_argument("--gpu-r", type=int_list, default=[1, 12, 48, 192], help="gpu: r values")
    p.add_argument("--bptt-r", type=int_list, default=[1, 12], help="bptt: students per pack")
    p.add_argument("--bptt-widths", type=int_list, help="bptt: widths (default: config.yaml's)")
    p.add_argument(
        "--kernel-widths", type=int_list, default=[2, 4, 6, 8, 14, 64], help="kernel: widths"
    )
    p.add_argument("--kernel-r", type=int_list, default=[1, 12], help="kernel: students per pack")
    p.add_argument("--project-config", type=Path, default=ROOT / "config" / "paper.yaml")
    p.add_argument("--project-cores", type=int_list, default=[2, 16], help="cores to project")
    p.add_argument(
        "--project-pack-by",
        type=lambda text: [a for a in text.split(",") if a],
        help="packed axes (default: the config's train.pack_by, else seed,target)",
    )
    p.add_argument("--project-steps", type=int, help="timed steps per shape (default 20)")
    p.add_argument("--project-sweep-n", type=int, default=256, help="test sequences timed")
    p.add_argument("--project-sweep-betas", type=int, default=2, help="nonzero betas timed")
    p.add_argument("--bench-dir", type=Path, default=Path("benchmarks"))
    p.add_argument("--log-dir", type=Path, default=Path("logs"))
    p.add_argument("--snakemake-dir", type=Path, default=Path(".snakemake"))
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "widths": [8, 64] if quick else [8, 16, 32, 64],
        "repeats": 3 if quick else 9,
        "sweep_widths": [8] if quick else [8, 64],
        "sweep_betas": 4 if quick else len(beta_grid()),
        "sweep_draws": 8 if quick else 30,
        "ref_sweep_betas": 2 if quick else 4,
        "sweep_n": 256 if quick else 2048,
        "sweep_train_steps": 10 if quick else 100,
        "scaling_T": [100, 200] if quick else [100, 200, 400],
        "scaling_m": [8, 32] if quick else [8, 16, 32, 64],
        "scaling_repeats": 2 if quick else 5,
        "rss_steps": 10 if quick else 100,
        "pack_steps": 10 if quick else 60,
        "pack_repeats": 1 if quick else 3,
        "project_steps": 4 if quick else 20,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.job_steps is None:
        args.job_steps = read_config(ROOT / "config" / "config.yaml")["train"]["steps"]
    args.sections = [s for item in args.sections for s in item.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return 0
    common.CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        print("--device cuda: CUDA is not available", file=sys.stderr)
        return 2
    devices = {"auto": ["cpu", "cuda"] if cuda else ["cpu"], "cpu": ["cpu"], "cuda": ["cuda"]}
    devices = [torch.device(d) for d in devices[args.device]]
    if args.clock == "cpu" and any(d.type == "cuda" for d in devices):
        print("--clock cpu does not measure GPU time; use --clock wall", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0).replace(" ", "_") if cuda else "none"
    print(
        f"env torch={torch.__version__} threads={torch.get_num_threads()} "
        f"devices={','.join(d.type for d in devices)} gpu={gpu} cuda_available={cuda} "
        f"python={platform.python_version()} quick={args.quick} clock={args.clock}",
        flush=True,
    )
    table = Table()
    startup = args.startup_s
    if {"pack", "project"} & set(args.sections):
        if startup is None:
            startup = measure_startup()  # once, before anything else loads the machine
        table.note("startup", f"imports={STARTUP_IMPORTS.replace(' ', '')} seconds={startup:.3f}")
    runners = {  # section -> how it runs, in the order the sections print
        "train": lambda: [bench_train_steps(args, table, device) for device in devices],
        "sweep": lambda: bench_sweep(args, table),
        "scaling": lambda: bench_scaling(args, table, devices[0]),
        "rss": lambda: bench_rss(args, table),
        "e2e": lambda: bench_e2e(args, table),
        "pack": lambda: bench_pack(args, table, startup),
        "gpu": lambda: bench_gpu(args, table),
        "bptt": lambda: bench_bptt(args, table),
        "tanh": lambda: bench_tanh(args, table),
        "kernel": lambda: bench_kernel(args, table),
        "project": lambda: bench_project(args, table, startup),
    }
    for section, run in runners.items():
        if section in args.sections:
            run()
    table.write(args.out)
    print(f"wrote {args.out}", flush=True)
    if table.failed:
        print(f"{len(table.failed)} equivalence check(s) FAILED", file=sys.stderr)
        return 1
    return 0
