"""The benchmark (the package bench/, run as bench/benchmark.py) as a correctness smoke
test on tiny sizes: it runs, every output line parses, the equivalence checks pass, the
table is written; and its helpers (job times, the list scheduler, the project DAG) on
cases with known answers. No timing is asserted."""

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "benchmark.py"
ENV = os.environ | {"PYTHONPATH": str(ROOT / "workflow" / "scripts")}
TIMED = re.compile(
    r"^(?P<measurement>[\w-]+) (?P<setting>(?:\S+=\S+ )*)ours=(?P<ours>[\d.]+) ms"
    r"(?: baseline=(?P<baseline>[\d.]+) ms ratio=(?P<ratio>[\d.]+|nan)x)?$"
)
NOTE = re.compile(r"^(?P<measurement>[\w-]+)(?: \S+=\S+)+$|^gpu skipped: no CUDA$")
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
    "--pack-steps", "2",
    "--pack-widths", "2",
    "--pack-r", "1,2",
    "--pack-repeats", "1",
    "--gpu-r", "1,2",
    "--startup-s", "0.5",
]  # fmt: skip
TINY_CONFIG = {  # a project grid of 2 targets x 2 params x 2 widths x 2 seeds
    "targets": {
        "pol": {"kind": "linear", "kernel": "pol", "kernel_params": {"s": 0.1, "p": 1.1}},
        "exp": {"kind": "linear", "kernel": "exp", "kernel_params": {"a": 1.0}},
    },
    "data": {"T": 12, "dt": 1.0, "d": 1, "n_train": 64, "n_val": 32, "n_test": 32},
    "students": {
        "structures": ["diagonal"],
        "parameterisations": ["direct", "softplus"],
        "activations": ["tanh"],
        "widths": [3, 2],
        "dtype": "float64",
    },
    "seeds": [1, 2],
    "train": {"steps": 100, "batch_size": 16, "lr": 0.01, "clip_norm": 0.5, "eval_every": 10},
    "perturbation": {
        "beta_min": 0.001, "beta_step": 0.5, "n_betas": 3, "repeats": 2, "norms": ["inf", "l2"]
    },
    "memory": {"amplitudes": [1], "horizon": 50, "fit_from": 5},
}  # fmt: skip


if str(ROOT) not in sys.path:  # the package bench/, as bench/benchmark.py imports it
    sys.path.insert(0, str(ROOT))

from bench import cli, common  # noqa: E402
from bench.sections import gpu, pack, project  # noqa: E402


def run_benchmark(tmp_path: Path, *extra: str) -> tuple[list[str], list[dict]]:
    out = tmp_path / "bench.tsv"
    cmd = [sys.executable, str(SCRIPT), *TINY, "--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path)
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
        "check_claims.tsv": ("1.0", "150.0"),  # a rule without wildcards: one file
    }
    for name, (seconds, rss) in jobs.items():
        path = root / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t90\t12\n")
    log = root / ".snakemake" / "log" / "2024-01-02T030405.123456.snakemake.log"
    log.parent.mkdir(parents=True)
    log.write_text("3 of 3 steps (100%) done\nElapsed time: 0:01:02.500000\n")


def test_help():
    cmd = [sys.executable, str(SCRIPT), "--help"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0
    assert "--quick" in done.stdout and "--threads" in done.stdout
    assert "--pack-steps" in done.stdout and "--job-steps" in done.stdout


@pytest.mark.filterwarnings("ignore")
def test_quick_run_parses_and_checks_pass(tmp_path):
    fake_snakemake_run(tmp_path)
    lines, rows = run_benchmark(tmp_path, "--sections", "train,sweep,scaling,rss,e2e", "gpu")
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
    gpu = [line for line in lines if line.startswith("gpu ")]
    assert gpu == ["gpu skipped: no CUDA"] if not torch.cuda.is_available() else gpu
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
    # end to end, from the fake run: 12.5 + 3.0 + 4.5 + 1.0 s; only the w64 training job's RSS
    assert "quantity=summed_job_seconds value=21.0 unit=s jobs=4" in text
    assert "quantity=summed_job_seconds rule=check_claims value=1.0 unit=s jobs=1" in text
    assert "quantity=max_rss_train_m64 value=410.2 unit=MB jobs=1" in text
    assert "quantity=wall_clock_last_run value=62.5 unit=s steps=3/3" in text


@pytest.mark.parametrize(
    ("section", "n_checks", "n_timed", "setting"),
    [
        ("bptt", 8, 8, "act=hardtanh m=5 r=3 "),  # tanh, hardtanh x 2 widths x 2 pack sizes
        ("tanh", 5, 4, "act=tanh m=5 r=3 "),  # the form's error, then 2 widths x 2 pack sizes
    ],
)
def test_pack_step_sections_check_then_time(tmp_path, section, n_checks, n_timed, setting):
    lines, rows = run_benchmark(
        tmp_path, "--sections", section, "--bptt-widths", "2,5", "--bptt-r", "1,3"
    )
    checks = [line for line in lines if line.startswith(f"check {section} ")]
    assert len(checks) == n_checks and all(line.endswith(" ok") for line in checks)
    timed = [m for m in map(TIMED.match, lines) if m and m["measurement"] == section]
    assert len(timed) == n_timed == len(rows)
    assert any(m["setting"].startswith(setting) for m in timed)
    assert all(float(m["ours"]) > 0 and float(m["baseline"]) > 0 for m in timed)


def test_kernel_section_checks_then_times(tmp_path):
    """fused against torch: per dtype x width x r, a checked training step and a checked
    perturbation pass, as ratio=N.Nx lines."""
    lines, rows = run_benchmark(
        tmp_path, "--sections", "kernel", "--kernel-widths", "2,5", "--kernel-r", "1,3"
    )
    checks = [line for line in lines if line.startswith("check kernel ")]
    assert all(line.endswith(" ok") for line in checks)
    # per dtype x width x r: the step's and the sweep's results, and that the sweep's torch
    # baseline made no fused call (it would measure the fused kernel against itself)
    baseline = [line for line in checks if "baseline_fused_calls=0" in line]
    assert len(checks) == 2 * 2 * 2 * 3 and len(baseline) == 2 * 2 * 2
    timed = [m for m in map(TIMED.match, lines) if m and m["measurement"].startswith("kernel")]
    assert len(timed) == len(rows) == 16
    assert {m["measurement"] for m in timed} == {"kernel-step", "kernel-sweep"}
    assert any(m["setting"].startswith("act=tanh m=5 r=3 ") for m in timed)
    assert {m["setting"].split("dtype=")[1].strip() for m in timed} == {"float32", "float64"}
    assert all(float(m["ours"]) > 0 and re.fullmatch(r"\d+\.\d", m["ratio"]) for m in timed)


def test_without_benchmark_files_says_so(tmp_path):
    lines, rows = run_benchmark(tmp_path, "--sections", "e2e")
    assert any(line.startswith("e2e status=no_benchmark_files") for line in lines)
    assert rows[0]["measurement"] == "e2e"


# ---------------------------------------------------------------------------- pack, project
@pytest.fixture(scope="module")
def pack_run(tmp_path_factory):
    """One tiny run of the pack and gpu sections."""
    return run_benchmark(tmp_path_factory.mktemp("pack"), "--sections", "pack", "gpu")


@pytest.fixture(scope="module")
def project_run(tmp_path_factory):
    """One tiny run of the project section on TINY_CONFIG (it dry-runs the workflow)."""
    tmp = tmp_path_factory.mktemp("project")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    extra = ["--project-config", str(config), "--project-steps", "2"]
    extra += ["--project-sweep-n", "16", "--project-sweep-betas", "1"]
    return run_benchmark(tmp, "--sections", "project", *extra)


def test_pack_lines(pack_run):
    lines, rows = pack_run
    assert "startup imports=torch,pandas,numpy,scipy.stats seconds=0.500" in lines
    packs = [TIMED.match(line) for line in lines if line.startswith("pack")]
    assert packs and all(packs)
    # default config: 3 activations; paper: tanh; r = 1, 2 (width 2: one pack); two lines each
    assert len(packs) == (3 + 1) * 2 * 2
    parsed = [(m, dict(kv.split("=") for kv in m["setting"].split())) for m in packs]
    step_ms = {(k["config"], k["act"], k["r"]): float(m["ours"]) for m, k in parsed if "-" in m[1]}
    assert len(step_ms) == 8  # every pack line has its pack-step line
    for m, keys in parsed:
        assert {"m", "r", "max_bytes", "packs"} <= set(keys) and keys["m"] == "2"
        assert float(m["ratio"]) == pytest.approx(
            float(m["baseline"]) / float(m["ours"]), rel=0.05, abs=0.06
        )
        if keys["r"] == "1":
            assert m["ours"] == m["baseline"] and m["ratio"] == "1.0"
        if m["measurement"] == "pack":
            # ours = (startup + S step(r)) / (r S): a start-up share on top of step(r) / r
            r, S = int(keys["r"]), int(keys["S"])
            assert S == 1500 and keys["startup_s"] == "0.50"
            step = step_ms[(keys["config"], keys["act"], keys["r"])]
            assert float(m["ours"]) == pytest.approx(step + 1e3 * 0.5 / (r * S), abs=2e-3)
    assert {r["measurement"] for r in rows} >= {"pack", "pack-step", "startup"}


@pytest.mark.workflow
def test_project_lines(project_run):
    lines, rows = project_run
    assert "startup imports=torch,pandas,numpy,scipy.stats seconds=0.500" in lines
    assert {r["measurement"] for r in rows} == {"startup", "project-measure", "project"}
    measured = [line for line in lines if line.startswith("project-measure ")]
    assert len(measured) == 2  # rnn x diagonal x tanh x widths 2, 3
    assert all(" family=rnn structure=diagonal act=tanh m=" in line for line in measured)
    # an overlay over config/config.yaml: packed by seed, target and param, 2 x 2 x 2 = 8
    assert all(NOTE.match(line) and "step_r8_ms=" in line for line in measured)
    projected = [line for line in lines if line.startswith("project ")]
    assert [re.search(r"cores=(\d+)", line)[1] for line in projected] == ["2", "16"]
    for line in projected:
        keys = dict(kv.split("=") for kv in line.split()[1:])
        packed, unpacked = float(keys["packed"]), float(keys["unpacked"])
        assert packed > 0 and unpacked > 0 and keys["unit"] == "h"
        ratio = float(keys["ratio"].removesuffix("x"))
        assert ratio == pytest.approx(unpacked / packed, rel=0.01, abs=0.01)
        assert keys["config"] == "tiny" and keys["students"] == "16"
        # packs of 8: 2 training + 2 perturbation jobs (one per width) + 1 memory job
        assert keys["jobs_packed"] == "5" and keys["jobs_unpacked"] == "40"


def test_sections_parse():
    assert cli.parse_args(["--sections", "pack", "project"]).sections == ["pack", "project"]
    assert cli.parse_args(["--sections", "train,e2e", "gpu"]).sections == ["train", "e2e", "gpu"]
    assert cli.parse_args([]).sections == list(cli.SECTIONS)
    assert {"pack", "gpu", "project"} <= set(cli.SECTIONS)
    assert cli.parse_args([]).job_steps == 1500  # the default config's budget
    with pytest.raises(SystemExit):
        cli.parse_args(["--sections", "nope"])


def test_job_seconds_and_subpacks():
    assert pack.job_seconds(2.5, 1500, 0.004) == pytest.approx(8.5)
    assert pack.job_seconds(2.5, 0, 1.0) == 2.5
    assert pack.itemsize("float32") == 4 and pack.itemsize("float64") == 8
    assert pack.subpacks(48, 2**16, 128, 14, 4) == 6  # 9 copies per pack (float32)
    assert pack.subpacks(48, 2**16, 128, 14, 8) == 12  # 4 copies per pack (float64)
    assert pack.subpacks(12, 2**16, 128, 8, 4) == 1
    assert pack.subpacks(12, 2**16, 128, 8, 8) == 2  # 8 copies per pack
    assert pack.subpacks(1, 2**16, 128, 1000, 8) == 1
    limit = pack.PACK_BYTES
    assert limit == 2**18
    assert pack.pack_variants([1, 12, 48], 128, 14, 4) == [
        (1, limit), (12, limit), (48, 48 * 128 * 14 * 4), (48, limit)
    ]  # fmt: skip
    # float64: 8 copies of width 32 fill PACK_BYTES, so 12 are split (float32 would not be)
    assert pack.pack_variants([1, 8, 12], 128, 32, 8) == [
        (1, limit), (8, limit), (12, 12 * 128 * 32 * 8), (12, limit)
    ]  # fmt: skip
    assert pack.pack_variants([12], 128, 8, 4) == [(12, limit)]


def test_measure_startup_times_the_code_in_a_fresh_process():
    quick = pack.measure_startup(repeats=1, code="pass")
    slow = pack.measure_startup(repeats=1, code="import time; time.sleep(0.4)")
    assert slow >= 0.4 and slow - quick >= 0.3  # the code's own wall time is counted


def test_list_schedule_known_makespan():
    # a(3) -> b(2) -> d(1); c(2) -> d
    seconds = {"a": 3.0, "c": 2.0, "b": 2.0, "d": 1.0}
    deps = {"a": [], "c": [], "b": ["a"], "d": ["b", "c"]}
    assert project.critical_paths(seconds, deps) == {"a": 6.0, "c": 3.0, "b": 3.0, "d": 1.0}
    assert project.list_schedule(seconds, deps, 1) == 8.0  # the sum
    assert project.list_schedule(seconds, deps, 2) == 6.0  # a, c; then b; then d
    assert project.list_schedule(seconds, deps, 16) == 6.0  # the critical path
    # independent jobs, longest first: 5 | 3; then 3 on the free core, 3 on the next
    jobs = {i: s for i, s in enumerate([3.0, 5.0, 3.0, 3.0])}
    assert project.list_schedule(jobs, dict.fromkeys(jobs, []), 2) == 8.0
    assert project.list_schedule(jobs, dict.fromkeys(jobs, []), 4) == 5.0


@pytest.mark.workflow
def test_project_dag_and_projection():
    def seconds_of(stage, wildcards, r):
        return {"train": int(wildcards["width"]) * r, "perturbation": 1.0, "memory": 2.0}[stage]

    packed = project.project_dag(TINY_CONFIG, ["target", "seed"], seconds_of, startup=0.5)
    unpacked = project.project_dag(TINY_CONFIG, [], seconds_of)
    # train and perturbation per param x width (packs of 4), memory per param (all widths)
    assert len(packed[0]) == 2 * 2 * 2 + 2
    assert len(unpacked[0]) == 2 * 16 + 8
    seconds, deps = packed
    narrow, wide = (("train", ("rnn", "diagonal", "direct", "tanh", w)) for w in "23")
    assert seconds[wide] == 12 and deps[wide] == [narrow]
    assert deps[("perturbation", wide[1])] == [wide]
    memory = ("memory", ("rnn", "diagonal", "direct", "tanh"))
    assert deps[memory] == [narrow, wide] and seconds[memory] == 0.5 + 2 * 2.0
    assert list(seconds).index(memory) > list(seconds).index(wide)  # topological order
    # plenty of cores: the chain 2r + 3r, then the memory job (0.5 s + 2 widths x 2 s)
    assert project.list_schedule(*packed, 100) == 4 * 5 + 4.5
    assert project.list_schedule(*unpacked, 100) == 5 + 4
    # one core: every job in turn
    assert (
        project.list_schedule(*unpacked, 1) == sum(unpacked[0].values()) == 8 * (2 + 3) + 16 + 8 * 4
    )
    no_chain = TINY_CONFIG | {"train": TINY_CONFIG["train"] | {"width_monotone": False}}
    assert project.list_schedule(*project.project_dag(no_chain, [], seconds_of), 100) == 3 + 4


def dry_run_counts(config: Path, tmp_path: Path) -> dict[str, int]:
    """Jobs per rule of the workflow's own dry run of a config file (its job stats)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile"]
    cmd += [str(config), "--directory", str(tmp_path), "--snakefile", str(project.SNAKEFILE)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = re.findall(r"^(\w+)\s+(\d+)$", done.stdout + done.stderr, re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["tiny.yaml", "tiny_families.yaml"])
def test_project_jobs_are_the_dry_runs(tmp_path, name):
    """The projected DAG's jobs per rule are the workflow's dry run's, families included,
    packed and one student per job; every job's students sum to the grid."""
    path = ROOT / "tests" / "config" / name
    config = common.read_config(path)
    expected = dry_run_counts(path, tmp_path)
    priced = {rule: n for rule, n in expected.items() if project.stage_of(rule)}
    for pack_by in (None, []):
        jobs, deps = project.priced_jobs(project.workflow_jobs(config, pack_by))
        counts = {}
        for job in jobs.values():
            counts[job.rule] = counts.get(job.rule, 0) + 1
        if pack_by is None:  # the config's own packing: the dry run above
            assert counts == priced
            seconds, _ = project.project_dag(config, pack_by, lambda *_: 1.0)
            assert len(seconds) == sum(priced.values())
        trains = [job for (stage, _), job in jobs.items() if stage == "train"]
        students = len(config["targets"]) * len(config["seeds"]) * len(config["students"]["widths"])
        assert sum(project.students_of(job) for job in trains) >= students
        assert all(dep in jobs for ds in deps.values() for dep in ds)
    if name == "tiny_families.yaml":  # lru, lstm and gru: the rules of the fixed families
        assert priced["train_students_fixed"] == 3 * 2 and priced["train_students"] == 2 * 2
        assert priced["estimate_student_memory_fixed"] == 3


def test_gpu_section_runs_on_any_device():
    """The gpu section's code path, on the CPU (CUDA is never required)."""
    args = cli.parse_args(["--pack-widths", "2", "--gpu-r", "1,2", "--T", "12"])
    args.pack_steps, args.pack_repeats = 2, 1
    table = common.Table()
    gpu.bench_gpu(args, table, torch.device("cpu"))
    assert len(table.rows) == 4 * 2  # 4 shapes x r = 1, 2
    assert all(r["measurement"] == "gpu" and " r=" in f" {r['setting']}" for r in table.rows)
    assert all(math.isfinite(float(r["ratio"])) for r in table.rows)
