"""Write the result blocks of README.md, docs/results.md and docs/performance.md from the
committed tables, so that no number in them can drift from its source:

- docs/figures/<run>_claims.tsv (``claims.tsv`` for the default run), <run>_seed_halves.tsv,
  <run>_families.tsv and the figures docs/figures/<run>_*.png (``make docs-figures``);
- docs/bench/*.log, the lines ``make bench`` printed on a machine (``bench/benchmark.py``).

    python scripts/results_docs.py          # rewrite the blocks in place
    python scripts/results_docs.py --check  # exit 1 if a block is out of date

A block is the text between ``<!-- begin generated: NAME ... -->`` and
``<!-- end generated: NAME -->``; NAME says what fills it (``default``, ``run nonlinear``,
``verdicts``, ``gpu``, ...). The prose around the blocks is written by hand and left alone.

Claims tables come in two formats. The current one (method §7) has a ``verdict`` column
(holds, fails, inconclusive) and a ``reading`` column; a table written before §7 has a
``holds`` column (true, false, n/a) instead. An old table is shown converted (true: holds,
false: fails, n/a: inconclusive) under a note that its rows were decided by the rules
before §7, and is never compared with a table of the current format."""

from __future__ import annotations

import csv
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs/figures"
BENCH = ROOT / "docs/bench"
DOCS = ("README.md", "docs/results.md", "docs/performance.md")
BEGIN = re.compile(
    r"<!-- begin generated: ([\w -]+?) \(scripts/results_docs\.py; do not edit\) -->"
)
VERDICTS = ("holds", "fails", "inconclusive")
OLD = {"true": "holds", "false": "fails", "n/a": "inconclusive"}
OLD_NOTE = (
    "decided by the rules before §7 (a confidence interval containing 0 counted as "
    "holding; `true` is shown as holds, `false` as fails, `n/a` as inconclusive); a run "
    "under the rules of [method §7]({method}#7-verdicts-how-a-claim-is-decided) replaces it"
)
KEYS = ("claim", "setting", "reading", "measure")
# the decided rows of a claims table are listed in the README up to this many
README_ROWS = 20


def begin(name: str) -> str:
    return f"<!-- begin generated: {name} (scripts/results_docs.py; do not edit) -->"


def end(name: str) -> str:
    return f"<!-- end generated: {name} -->"


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


class Claims:
    """A claims table with one ``verdict`` per row, whatever its format."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = read_tsv(path)
        columns = set(self.rows[0]) if self.rows else set()
        self.old = "verdict" not in columns and "holds" in columns
        for row in self.rows:
            if self.old:
                row["verdict"] = OLD.get(row["holds"], row["holds"])
                row.setdefault("reading", "")
            row["verdict"] = row.get("verdict", "") or "inconclusive"

    def claims(self) -> list[str]:
        return list(dict.fromkeys(row["claim"] for row in self.rows))

    def decided(self) -> list[dict[str, str]]:
        return [row for row in self.rows if row["verdict"] in ("holds", "fails")]

    def counts(self) -> list[str]:
        out = []
        for claim in self.claims():
            count = Counter(r["verdict"] for r in self.rows if r["claim"] == claim)
            out.append([claim, *(str(count[v]) for v in VERDICTS), str(sum(count.values()))])
        total = Counter(r["verdict"] for r in self.rows)
        out.append(["all", *(str(total[v]) for v in VERDICTS), str(len(self.rows))])
        return table(["claim", *VERDICTS, "rows"], out)

    def row_table(self, rows: list[dict[str, str]]) -> list[str]:
        if self.old:
            header = ["claim", "setting", "measured", "verdict"]
            body = [[r["claim"], r["setting"], r["measured"], r["verdict"]] for r in rows]
        else:
            header = ["claim", "setting", "reading", "measured", "p_adj", "verdict"]
            body = [
                [r["claim"], r["setting"], r["reading"], r["measured"], p(r), r["verdict"]]
                for r in rows
            ]
        return table(header, body)

    def source(self, method: str) -> str:
        name = f"`docs/figures/{self.path.name}`"
        if self.old:
            return f"From {name}, {OLD_NOTE.format(method=method)}."
        return f"From {name} (verdicts by the rules of method §7)."


def p(row: dict[str, str]) -> str:
    try:
        return f"{float(row.get('p_adj', '')):.3g}"
    except ValueError:
        return ""


def details(summary: str, lines: list[str]) -> list[str]:
    return ["<details><summary>" + summary + "</summary>", "", *lines, "", "</details>"]


def claims_path(figures: Path, run: str, kind: str = "claims") -> Path:
    return figures / (f"{kind}.tsv" if run == "default" else f"{run}_{kind}.tsv")


def run_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "config").glob("*.yaml") if p.stem != "config")


def figure_paths(figures: Path, run: str) -> list[Path]:
    pngs = sorted(figures.glob("*.png"))
    if run == "default":
        prefixes = tuple(f"{name}_" for name in run_names())
        return [p for p in pngs if not p.name.startswith(prefixes)]
    return [p for p in pngs if p.name.startswith(f"{run}_")]


def missing(path: Path, run: str) -> str:
    target = "run" if run == "default" else run.replace("_", "-")
    return (
        f"not yet run: no `docs/figures/{path.name}` (`make {target}`, then "
        "`make docs-figures` and `make docs`)"
    )


def seed_halves(figures: Path, run: str) -> str:
    path = claims_path(figures, run, "seed_halves")
    if not path.exists():
        return f"Seed halves: {missing(path, run)}."
    rows = read_tsv(path)
    bad = sum(r.get("contradicts", "").strip().lower() == "true" for r in rows)
    return (
        f"Seed halves (`docs/figures/{path.name}`): {bad} of {len(rows)} rows contradict "
        "(one half of the seeds holds, the other fails)."
    )


# ---- the blocks ---------------------------------------------------------------------


def side_by_side(three: Claims, ten: Claims) -> list[str]:
    """Verdict counts per claim of the default run and of the 10-seed run, side by side."""
    body = []
    for claim in dict.fromkeys([*three.claims(), *ten.claims()]):
        cells = []
        for table_ in (three, ten):
            count = Counter(r["verdict"] for r in table_.rows if r["claim"] == claim)
            cells.append(" / ".join(str(count[v]) for v in VERDICTS))
        body.append([claim, *cells])
    cells = [
        " / ".join(str(Counter(r["verdict"] for r in t.rows)[v]) for v in VERDICTS)
        for t in (three, ten)
    ]
    body.append(["all", *cells])
    header = [
        "claim",
        "default, 3 seeds: holds / fails / inconclusive",
        "`make verdicts`, 10 seeds",
    ]
    return table(header, body)


def block_default(figures: Path, bench: Path) -> list[str]:
    """README: the default run's verdicts, counts per claim and the decided rows."""
    path = claims_path(figures, "default")
    if not path.exists():
        return ["The default run's claims table is not yet in `docs/figures/claims.tsv`."]
    claims = Claims(path)
    lines = [claims.source("docs/method.md"), ""]
    other = claims_path(figures, "verdicts")
    if other.exists() and not claims.old and not Claims(other).old:
        lines += [*side_by_side(claims, Claims(other)), ""]
    else:
        lines += [*claims.counts(), ""]
    decided = claims.decided()
    if claims.old or len(decided) > README_ROWS:
        lines.append(
            f"{len(decided)} of {len(claims.rows)} rows are decided; every row is in "
            "[docs/results.md](docs/results.md#the-default-run-make-run)."
        )
    elif decided:
        lines += [f"The {len(decided)} decided rows:", "", *claims.row_table(decided)]
    else:
        lines.append("No row is decided.")
    return [*lines, "", seed_halves(figures, "default")]


def figures_lines(figures: Path, run: str) -> list[str]:
    paths = figure_paths(figures, run)
    if not paths:
        return ["No figures of this run in `docs/figures/` yet."]
    return [line for p in paths for line in (f"![{p.stem}](figures/{p.name})", "")][:-1]


def claims_lines(figures: Path, run: str) -> list[str]:
    path = claims_path(figures, run)
    if not path.exists():
        return [f"Claims: {missing(path, run)}."]
    claims = Claims(path)
    decided = claims.decided()
    return [
        claims.source("method.md"),
        "",
        *claims.counts(),
        "",
        *details(
            f"all {len(claims.rows)} rows ({len(decided)} decided)",
            claims.row_table(claims.rows),
        ),
    ]


def families_lines(figures: Path, run: str) -> list[str]:
    path = claims_path(figures, run, "families")
    if not path.exists():
        return []
    rows = read_tsv(path)
    targets = [c.removesuffix("_verdict") for c in rows[0] if c.endswith("_verdict")]
    ref = "theory" if f"{targets[0]}_theory" in rows[0] else "reference"
    header = ["model", "family / structure / param", *(f"{t} target" for t in targets)]
    body, detail = [], []
    for row in rows:
        cells = []
        for t in targets:
            verdict, expected = row[f"{t}_verdict"], row.get(f"{t}_{ref}", "")
            said = [
                f"{k}: {row[f'{t}_{k}']}" for k in ("theory", "reference") if row.get(f"{t}_{k}")
            ]
            text = verdict + (f" ({'; '.join(said)})" if said else "")
            if verdict in ("stable", "unstable") and expected and verdict != expected:
                text = f"**{text}**"
            cells.append(text)
        kind = "/".join(row[k] for k in ("family", "structure", "param"))
        body.append([row["model"], kind, *cells])
        for t in targets:
            measured = [
                f"{k}: {row[f'{t}_{k}']}"
                for k in ("radius", "crossing", "memory")
                if row.get(f"{t}_{k}")
            ]
            detail.append([row["model"], kind, t, "; ".join(measured)])
        if row.get("memory"):
            detail.append([row["model"], kind, "memory", row["memory"]])
    note = (
        f"From `docs/figures/{path.name}`: each cell's verdict, with what is expected in "
        f"brackets, **bold** where a decided verdict differs from the {ref}'s."
    )
    return [
        note,
        "",
        *table(header, body),
        "",
        *details("the slopes behind each cell", table(["model", "kind", "of", "measured"], detail)),
    ]


def block_run(figures: Path, bench: Path, run: str) -> list[str]:
    """docs/results.md: a run's figures, families table, claims and seed halves."""
    lines = figures_lines(figures, run) + [""]
    fam = families_lines(figures, run)
    if fam:
        lines += [*fam, ""]
    lines += claims_lines(figures, run)
    if claims_path(figures, run).exists():
        lines += ["", seed_halves(figures, run)]
    return lines


def block_verdicts(figures: Path, bench: Path) -> list[str]:
    """docs/results.md: the 10-seed run: rows decided, verdicts that differ from the
    default's 3 seeds, seed-halves contradictions."""
    path = claims_path(figures, "verdicts")
    if not path.exists():
        return [
            f"Claims: {missing(path, 'verdicts')}.",
            "",
            seed_halves(figures, "verdicts"),
        ]
    ten = Claims(path)
    decided = ten.decided()
    count = Counter(r["verdict"] for r in ten.rows)
    lines = [
        f"Decided: {len(decided)} of {len(ten.rows)} rows (holds {count['holds']}, "
        f"fails {count['fails']}, inconclusive {count['inconclusive']}).",
        "",
    ]
    default = claims_path(figures, "default")
    if not default.exists():
        lines.append("Not compared with the default run: `docs/figures/claims.tsv` is absent.")
    elif ten.old or Claims(default).old:
        lines.append(
            "Not compared with the default run: one of the two tables predates the rules of "
            "method §7, so their verdicts do not mean the same thing."
        )
    else:
        three = {tuple(r[k] for k in KEYS): r for r in Claims(default).rows}
        seeds = {r.get("n_seeds", "") for r in three.values()} - {"", "0"}
        seeds = f"{max(seeds, key=int)} seeds; " if seeds else ""
        both = [r for r in ten.rows if tuple(r[k] for k in KEYS) in three]
        differ = [r for r in both if r["verdict"] != three[tuple(r[k] for k in KEYS)]["verdict"]]
        lines.append(
            f"Against the default run ({seeds}rows joined on claim, setting, reading and "
            f"measure): {len(both)} rows in both tables, {len(differ)} with another verdict; "
            f"rows only in this table: {len(ten.rows) - len(both)}."
        )
        if differ:
            body = [
                [*(r[k] for k in KEYS), three[tuple(r[k] for k in KEYS)]["verdict"], r["verdict"]]
                for r in differ
            ]
            lines += ["", *table([*KEYS, "default", "verdicts"], body)]
    lines += ["", seed_halves(figures, "verdicts"), "", *figures_lines(figures, "verdicts"), ""]
    return lines + claims_lines(figures, "verdicts")


# ---- docs/bench/*.log -----------------------------------------------------------------

FIELD = re.compile(r"([\w-]+)=(\S+)")


def bench_lines(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    env, rows = {}, []
    for line in path.read_text().splitlines():
        section, _, rest = line.partition(" ")
        fields = dict(FIELD.findall(rest))
        if section == "env":
            env = fields
        elif "ours" in fields:
            rows.append({"section": section, **fields})
    return env, rows


def span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{lo:{fmt}}–{hi:{fmt}}"


def env_line(path: Path, env: dict[str, str], keys=("torch", "threads", "python")) -> str:
    said = ", ".join(f"{k} {env[k]}" for k in keys if k in env)
    return f"From `docs/bench/{path.name}` ({said})."


def block_gpu(figures: Path, bench: Path) -> list[str]:
    """docs/performance.md: ms per student·step on the GPU, by pack size r."""
    path = bench / "gpu_h200.log"
    if not path.exists():
        return ["No GPU log in `docs/bench/`."]
    env, rows = bench_lines(path)
    rows = [r for r in rows if r["section"] == "gpu"]
    sizes = sorted({int(r["r"]) for r in rows})
    groups = list(dict.fromkeys((r["config"], r["act"], r["dtype"]) for r in rows))
    body = []
    for config, act, dtype in groups:
        sub = [r for r in rows if (r["config"], r["act"], r["dtype"]) == (config, act, dtype)]
        widths = sorted({int(r["m"]) for r in sub})
        label = f"{act}, {dtype} ({config}), m = {span(widths, 'd')}"
        cells = []
        for size in sizes:
            at = [r for r in sub if int(r["r"]) == size]
            ms = span([float(r["ours"]) for r in at], ".3g") if at else ""
            ratio = span([float(r["ratio"].rstrip("x")) for r in at], ".3g")
            cells.append(ms if size == 1 else f"{ms} ({ratio}×)")
        body.append([label, *cells])
    return [
        env_line(path, env, ("torch", "gpu", "threads", "python"))
        + " Milliseconds per student·step, one pack of r students "
        "against one student alone on the same GPU (ratio in brackets); ranges over m.",
        "",
        *table(["students", *(f"r={s}" for s in sizes)], body),
    ]


def block_cpu(figures: Path, bench: Path) -> list[str]:
    """docs/performance.md: the same machine's CPU, one thread, pack against one student."""
    path = bench / "cpu_h200_host.log"
    if not path.exists():
        return ["No CPU log in `docs/bench/`."]
    env, rows = bench_lines(path)
    body = []
    for r in rows:
        if r["section"] != "pack-step" or r["r"] == "1":
            continue
        body.append(
            [
                f"{r['act']}, {r['dtype']} ({r['config']})",
                r["m"],
                r["r"],
                r["packs"],
                f"{float(r['ours']):.3g}",
                f"{float(r['baseline']):.3g}",
                r["ratio"].replace("x", "×"),
            ]
        )
    return [
        env_line(path, env) + " Section `pack-step` (no start-up share): milliseconds per "
        "student·step of r students trained as one pack (split into `packs` sub-packs by "
        "`max_bytes`) against one student alone, float32 unless said.",
        "",
        *table(["students", "m", "r", "packs", "pack ms", "alone ms", "ratio"], body),
    ]


def read_bench_tsv(path: Path) -> tuple[str, list[dict[str, str]]]:
    """A docs/bench table: its leading ``# measured ...`` line and its rows."""
    lines = path.read_text().splitlines()
    note = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else ""
    body = [line for line in lines if not line.startswith("#")]
    header = body[0].split("\t") if body else []
    return note, [dict(zip(header, line.split("\t"), strict=True)) for line in body[1:]]


def block_readme_verdicts(figures: Path, bench: Path) -> list[str]:
    """README: the 10-seed run in two lines (rows decided, against the default, seed
    halves) and what the supremum's ascent does to E_m(beta0) and to the verdicts."""
    path = claims_path(figures, "verdicts")
    if not path.exists():
        lines = [f"`make verdicts`: {missing(path, 'verdicts')}."]
    else:
        ten = Claims(path)
        count = Counter(r["verdict"] for r in ten.rows)
        lines = [
            f"`make verdicts` (10 seeds, 9 degrees of freedom): {len(ten.decided())} of "
            f"{len(ten.rows)} rows decided (holds {count['holds']}, fails {count['fails']}, "
            f"inconclusive {count['inconclusive']}).",
        ]
        default = claims_path(figures, "default")
        if default.exists() and not Claims(default).old and not ten.old:
            three = {tuple(r[k] for k in KEYS): r["verdict"] for r in Claims(default).rows}
            both = [r for r in ten.rows if tuple(r[k] for k in KEYS) in three]
            pairs = [(three[tuple(r[k] for k in KEYS)], r["verdict"]) for r in both]
            differ = sum(a != b for a, b in pairs)
            opposite = sum({a, b} == {"holds", "fails"} for a, b in pairs)
            newly = sum(a == "inconclusive" != b for a, b in pairs)
            lines[-1] += (
                f" Against the default run's 3 seeds, {differ} of {len(both)} shared rows "
                f"have another verdict: {newly} decided where 3 seeds were inconclusive, "
                f"{opposite} holding in one run and failing in the other."
            )
        lines[-1] += " " + seed_halves(figures, "verdicts")
    ratios, changes = bench / "ascent_verdicts.tsv", bench / "ascent_verdict_changes.tsv"
    if ratios.exists() and changes.exists():
        note, rows = read_bench_tsv(ratios)
        _, changed = read_bench_tsv(changes)
        spans = []
        for norm in ("inf", "l2"):
            by_width = {}
            for r in rows:
                if r["norm"] == norm:
                    by_width.setdefault(int(r["width"]), []).append(float(r["ratio_median"]))
            if by_width:
                lo, hi = min(by_width), max(by_width)
                med = {w: sorted(v)[len(v) // 2] for w, v in by_width.items()}
                spans.append(f"{norm} {med[lo]:.2g}x at m = {lo} to {med[hi]:.2g}x at m = {hi}")
        n_changed = Counter(r["norm"] for r in changed)
        lines += [
            "",
            "E(beta) is a supremum: projected gradient ascent from the sampled draws "
            "(`perturbation.method: ascent`) raises the verdicts run's E_m(beta0) by a median "
            f"{'; '.join(spans)} (`docs/bench/ascent_verdicts.tsv`). With the ascended "
            f"E_m(beta0), {n_changed.get('inf', 0)} verdicts change under the inf norm and "
            f"{n_changed.get('l2', 0)} under l2, all of them E_m(beta0) rows "
            "(`docs/bench/ascent_verdict_changes.tsv`).",
        ]
    return lines


def block_readme_filter(figures: Path, bench: Path) -> list[str]:
    """README: the filter run: each teacher's memory-function verdict and the filter rows'
    verdicts, with links to the teachers' memory functions and E_m(beta) figures."""
    path = claims_path(figures, "filter")
    if not path.exists():
        return [f"`make filter`: {missing(path, 'filter')}."]
    rows = Claims(path).rows
    memory = {}  # the filter rows state the teacher's memory-function verdict they expect
    for r in rows:
        found = re.search(r"its memory function: ([\w-]+)", r.get("expected", ""))
        if r["claim"] == "filter" and found:
            memory[r["setting"].split("/")[0]] = found[1]
    lines = ["| teacher | its memory function | filter rows: holds / fails / inconclusive |"]
    lines.append("|---|---|---|")
    teachers = sorted({r["setting"].split("/")[0] for r in rows if r["claim"] == "filter"})
    for teacher in teachers:
        mine = Counter(
            r["verdict"]
            for r in rows
            if r["claim"] == "filter" and r["setting"].split("/")[0] == teacher
        )
        counts = f"{mine['holds']} / {mine['fails']} / {mine['inconclusive']}"
        lines.append(f"| {teacher} | {memory.get(teacher, 'not fitted')} | {counts} |")
    links = [
        f"[{p.stem.removeprefix('filter_').replace('_', ' ')}](docs/figures/{p.name})"
        for p in figure_paths(figures, "filter")
    ]
    if links:
        lines += ["", "Figures: " + ", ".join(links) + "."]
    return lines


def block_default_run(figures: Path, bench: Path) -> list[str]:
    """docs/performance.md: the default `make run` measured side by side
    (docs/bench/default_run.tsv): wall clock and job-seconds per kind of rule."""
    path = bench / "default_run.tsv"
    if not path.exists():
        return ["Not yet measured: no `docs/bench/default_run.tsv`."]
    note, rows = read_bench_tsv(path)
    header = ["run", "code", "kernel", ".venv built in it", "wall (s)", "job-seconds"]
    header += ["training", "perturbation", "memory", "tables and figures"]
    body = [
        [r["run"], f"`{r['code']}`", r["kernel"], r["venv_in_wall"], r["wall_s"], r["job_s"]]
        + [r["train_s"], r["perturbation_s"], r["memory_s"], r["tables_figures_s"]]
        for r in rows
    ]
    lines = [f"From `docs/bench/default_run.tsv` ({note}).", "", *table(header, body)]
    by = {r["run"]: r for r in rows}
    if "fused" in by and "torch" in by:
        ratio = float(by["fused"]["job_s"]) / float(by["torch"]["job_s"])
        train = float(by["torch"]["train_s"]) / float(by["fused"]["train_s"])
        lines += [
            "",
            f"The fused kernels take the default run's job-seconds to {ratio:.2f} of the "
            f"torch path's (training {train:.1f}x faster).",
        ]
    return lines


def block_readme_cost(figures: Path, bench: Path) -> list[str]:
    """README: the default run's measured cost, one line."""
    path = bench / "default_run.tsv"
    if not path.exists():
        return ["The default run's cost: not yet measured (`docs/bench/default_run.tsv`)."]
    _, rows = read_bench_tsv(path)
    fused = next((r for r in rows if r["run"] == "fused"), None)
    if fused is None:
        return ["The default run's cost: no `fused` row in `docs/bench/default_run.tsv`."]
    return [
        f"`make run` from a fresh clone on 2 cores: {fused['wall_s']} s of wall clock, building "
        f"`.venv` included ({fused['job_s']} job-seconds; `docs/bench/default_run.tsv`, "
        "[docs/performance.md](docs/performance.md))."
    ]


BLOCKS = {"default": block_default, "verdicts": block_verdicts, "gpu": block_gpu}
BLOCKS["cpu"] = block_cpu
BLOCKS["readme verdicts"] = block_readme_verdicts
BLOCKS["readme filter"] = block_readme_filter
BLOCKS["default run"] = block_default_run
BLOCKS["readme cost"] = block_readme_cost


def fill(name: str, figures: Path, bench: Path) -> str:
    if name.startswith("run "):
        lines = block_run(figures, bench, name.removeprefix("run "))
    else:
        lines = BLOCKS[name](figures, bench)
    return "\n".join([begin(name), *lines, end(name)])


def render(text: str, figures: Path = FIGURES, bench: Path = BENCH) -> str:
    """``text`` with every generated block filled from ``figures`` and ``bench``."""
    for name in BEGIN.findall(text):
        pattern = re.escape(begin(name)) + r".*?" + re.escape(end(name))
        new = fill(name, figures, bench)
        text, found = re.subn(pattern, lambda _, new=new: new, text, count=1, flags=re.S)
        if not found:
            raise SystemExit(f"block {name!r} has no end marker")
    return text


def main(argv: list[str]) -> int:
    stale = []
    for doc in DOCS:
        path = ROOT / doc
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(doc)
            if "--check" not in argv:
                path.write_text(new)
    if "--check" in argv and stale:
        print(f"{', '.join(stale)} out of date: run python scripts/results_docs.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
