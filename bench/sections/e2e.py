"""Section ``e2e``: a finished Snakemake run's job seconds, peak memory and wall clock."""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.common import RSS_TARGET_MB, Table

SNAKEMAKE_LOG_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6})")


SNAKEMAKE_ELAPSED = re.compile(r"Elapsed time: (?:(\d+) days?, )?(\d+):(\d+):([\d.]+)")


SNAKEMAKE_STEPS = re.compile(r"(\d+) of (\d+) steps")


WIDTH_64 = re.compile(r"(?:^|[/_=.\-])(?:m|w|width)?[=_\-]?64(?:[/_.\-=]|$)")


def read_benchmarks(root: Path) -> list[tuple[Path, dict]]:
    rows = []
    for path in sorted(root.glob("**/*.tsv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                rows.append((path, row))
    return rows


def as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def snakemake_runs(snakemake_dir: Path) -> list[dict]:
    """Snakemake's own logs, oldest first: wall clock (its "Elapsed time" line, else the
    log's modification time minus the start time in its name) and steps done."""
    runs = []
    for path in sorted((snakemake_dir / "log").glob("*.snakemake.log")):
        text = path.read_text(errors="replace")
        elapsed = SNAKEMAKE_ELAPSED.findall(text)
        if elapsed:
            days, h, m, sec = elapsed[-1]
            wall = 86400 * int(days or 0) + 3600 * int(h) + 60 * int(m) + float(sec)
        else:
            start = SNAKEMAKE_LOG_TIME.search(path.name)
            if not start:
                continue
            stamp = datetime.strptime(start.group(1), "%Y-%m-%dT%H%M%S").timestamp()
            wall = path.stat().st_mtime - stamp
        steps = SNAKEMAKE_STEPS.findall(text)
        done, total = (int(v) for v in steps[-1]) if steps else (0, 0)
        runs.append({"log": path.name, "wall": wall, "done": done, "total": total})
    return runs


def report_wall_clock(args, table: Table) -> None:
    runs = [r for r in snakemake_runs(args.snakemake_dir) if r["done"] > 0]
    if runs:
        last = runs[-1]
        biggest = max(reversed(runs), key=lambda r: r["done"])  # the latest of the largest
        for name, run in (("wall_clock_last_run", last), ("wall_clock_largest_run", biggest)):
            table.note(
                "e2e",
                f"quantity={name} value={run['wall']:.1f} unit=s "
                f"steps={run['done']}/{run['total']} source={run['log']}",
            )
            if last is biggest:
                break
        return
    files = [p for p in args.log_dir.glob("**/*") if p.is_file()]
    if len(files) > 1:  # job logs only: from the end of the first job to the end of the last
        mtimes = [p.stat().st_mtime for p in files]
        table.note(
            "e2e",
            f"quantity=wall_clock_last_run value={max(mtimes) - min(mtimes):.1f} unit=s "
            "source=logs_mtime_span(lower_bound)",
        )
        return
    table.note("e2e", "quantity=wall_clock_last_run status=not_found")


def bench_e2e(args, table: Table) -> None:
    """Section 4: the last Snakemake run, from its benchmark files."""
    rows = read_benchmarks(args.bench_dir)
    if not rows:
        table.note("e2e", f"status=no_benchmark_files dir={args.bench_dir}")
        return
    seconds = [as_float(r.get("s")) for _, r in rows]
    table.note(
        "e2e",
        f"quantity=summed_job_seconds value={np.nansum(seconds):.1f} unit=s jobs={len(rows)}",
    )
    by_rule: dict[str, list[float]] = {}
    for (path, _), sec in zip(rows, seconds, strict=True):
        rule = path.relative_to(args.bench_dir).parts[0].removesuffix(".tsv")
        by_rule.setdefault(rule, []).append(sec)
    for rule, secs in sorted(by_rule.items()):
        if len(by_rule) > 1:
            table.note(
                "e2e",
                f"quantity=summed_job_seconds rule={rule} value={np.nansum(secs):.1f} unit=s "
                f"jobs={len(secs)}",
            )
    rss = [
        as_float(r.get("max_rss"))
        for path, r in rows
        if "train" in str(path.relative_to(args.bench_dir))
        and WIDTH_64.search(str(path.relative_to(args.bench_dir)))
    ]
    rss = [v for v in rss if math.isfinite(v)]
    if rss:
        peak = max(rss)
        table.note(
            "e2e",
            f"quantity=max_rss_train_m64 value={peak:.1f} unit=MB jobs={len(rss)} "
            f"target_mb={RSS_TARGET_MB:.0f} met={'yes' if peak < RSS_TARGET_MB else 'no'}",
        )
    else:
        table.note("e2e", "quantity=max_rss_train_m64 status=no_train_jobs_at_m64")
    report_wall_clock(args, table)
