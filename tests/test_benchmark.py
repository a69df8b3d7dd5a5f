"""benchmark.py as a correctness smoke test on tiny sizes: it runs, every output line
parses, the equivalence checks pass, the table is written. No timing is asserted."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "benchmark.py"
TIMED = re.compile(
    r"^(?P<measurement>\w+) (?P<setting>(?:\S+=\S+ )*)ours=(?P<ours>[\d.]+) ms"
    r"(?: baseline=(?P<baseline>[\d.]+) ms ratio=(?P<ratio>[\d.]+|nan)x)?$"
)
NOTE = re.compile(r"^(?P<measurement>\w+)(?: \S+=\S+)+$")
TINY = [
    "--quick",
    "--widths", "3",
    "--batch", "8",
    "--T", "12",
    "--repeats", "1",
    "--warmup", "0",
    "--sweep-widths", "3",
    "--sweep-betas", "3",
    "--sweep-draws", "3",
    "--sweep-n", "16",
    "--sweep-train-steps", "2",
    "--ref-sweep-betas", "2",
    "--scaling-T", "12,24",
    "--scaling-m", "3,6",
    "--scaling-fixed-m", "3",
    "--scaling-repeats", "1",
    "--rss-steps", "2",
]  # fmt: skip


def run_benchmark(tmp_path: Path, *extra: str) -> tuple[list[str], list[dict]]:
    out = tmp_path / "bench.tsv"
    cmd = [sys.executable, str(SCRIPT), *TINY, "--out", str(out), *extra]
    env = os.environ | {"PYTHONPATH": str(SCRIPT.parent)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return lines, rows


def fake_snakemake_run(root: Path) -> None:
    """Benchmark files and logs as a finished Snakemake run leaves them."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {
        "train_student/pol/diagonal/direct/tanh/w64/s1.tsv": ("12.5", "410.2"),
        "train_student/pol/diagonal/direct/tanh/w8/s1.tsv": ("3.0", "350.0"),
        "evaluate_perturbation/pol/diagonal/direct/tanh/w64/s1.tsv": ("4.5", "900.0"),
    }
    for name, (seconds, rss) in jobs.items():
        path = root / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t90\t12\n")
    log = root / ".snakemake" / "log" / "2024-01-02T030405.123456.snakemake.log"
    log.parent.mkdir(parents=True)
    log.write_text("3 of 3 steps (100%) done\nElapsed time: 0:01:02.500000\n")


def test_help():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "--quick" in done.stdout and "--threads" in done.stdout


@pytest.mark.filterwarnings("ignore")
def test_quick_run_parses_and_checks_pass(tmp_path):
    fake_snakemake_run(tmp_path)
    lines, rows = run_benchmark(tmp_path)
    assert lines[0].startswith("env torch=") and "threads=1" in lines[0]
    checks = [line for line in lines if line.startswith("check ")]
    assert checks and all(line.endswith(" ok") for line in checks)
    timed = [TIMED.match(line) for line in lines]
    measured = {m["measurement"] for m in timed if m}
    assert {"train_step", "sweep", "scaling"} <= measured
    for line in lines[1:]:
        if line.startswith(("check ", "wrote ")):
            continue
        assert TIMED.match(line) or NOTE.match(line), line
    paths = {m["setting"].split("path=")[1].split()[0] for m in timed if m and "path=" in m[0]}
    assert {"tanh", "linear-conv", "linear-loop", "loop", "conv"} <= paths
    for m in timed:
        if m and m["baseline"]:
            ratio = float(m["baseline"]) / float(m["ours"])
            assert float(m["ratio"]) == pytest.approx(ratio, rel=0.05, abs=0.06)
    # the table holds every printed measurement, with the promised columns
    assert list(rows[0]) == ["measurement", "setting", "ours_ms", "baseline_ms", "ratio"]
    assert len(rows) == sum(1 for line in lines[1:] if not line.startswith(("check ", "wrote ")))
    text = "\n".join(lines)
    assert "scaling_exponent act=tanh vary=T" in text and "scaling_exponent act=tanh vary=m" in text
    assert re.search(r"^rss .* peak_rss_mb=[\d.]+ ", text, re.M)
    # end to end, from the fake run: 12.5 + 3.0 + 4.5 s; only the w64 training job's RSS
    assert "quantity=summed_job_seconds value=20.0 unit=s jobs=3" in text
    assert "quantity=max_rss_train_m64 value=410.2 unit=MB jobs=1" in text
    assert "quantity=wall_clock_last_run value=62.5 unit=s steps=3/3" in text


def test_without_benchmark_files_says_so(tmp_path):
    lines, rows = run_benchmark(tmp_path, "--sections", "e2e")
    assert any(line.startswith("e2e status=no_benchmark_files") for line in lines)
    assert rows[0]["measurement"] == "e2e"
