"""The docs' result blocks are generated from the committed tables (scripts/results_docs.py)
and the README stays short and quotes no number about the default run of its own."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")
HEADER = (
    "claim\tsetting\treading\tmeasure\texpected\tmeasured\testimate\tci_low\tci_high\t"
    "n_seeds\tdf\tcensored_share\ttest\tp_adj\tverdict"
)


def load():
    spec = importlib.util.spec_from_file_location("results_docs", ROOT / "scripts/results_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def docs():
    return load()


def claims_row(claim, setting, reading, verdict, p="0.01"):
    return "\t".join(
        [claim, setting, reading, "lost", "radius does not shrink", "slope 0.2 [0.1, 0.3]"]
        + ["0.2", "0.1", "0.3", "10", "9", "0.0", "t across seeds", p, verdict]
    )


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_generated_blocks_are_up_to_date(docs):
    for name in docs.DOCS:
        text = (ROOT / name).read_text()
        assert docs.BEGIN.search(text), f"{name} has no generated block"
        assert docs.render(text) == text, f"{name} is stale: run python scripts/results_docs.py"
    assert docs.main(["--check"]) == 0


def test_readme_is_short_and_has_the_two_quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    block = readme.split("## Quick start")[1].split("```")[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]
    assert "Licence: MIT" in readme.splitlines()[-1]


def test_every_number_about_the_default_run_is_in_the_claims_table_or_generated(docs):
    readme = (ROOT / "README.md").read_text()
    text = section(readme, "## What the default run shows")
    start, stop = docs.begin("default"), docs.end("default")
    assert start in text and stop in text
    # the numbers of every generated block are allowed; the prose around them may quote
    # only what the committed claims table holds
    blocks = re.findall(r"<!-- begin generated: .*?<!-- end generated: [^>]*-->", text, re.S)
    prose = re.sub(r"<!-- begin generated: .*?<!-- end generated: [^>]*-->", "", text, flags=re.S)
    allowed = set(NUMBER.findall("".join(blocks))) | set(
        NUMBER.findall((ROOT / "docs/figures/claims.tsv").read_text())
    )
    quoted = set(NUMBER.findall(prose))
    assert quoted <= allowed, f"numbers not from claims.tsv nor generated: {quoted - allowed}"


def test_the_docs_link_to_files_that_exist():
    for name in ("README.md", "docs/results.md", "docs/performance.md"):
        path = ROOT / name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if not target.startswith("http"):
                assert (path.parent / target).exists(), f"{name}: {target}"


def test_a_current_claims_table_is_counted_and_its_decided_rows_listed(docs, tmp_path):
    write(
        tmp_path / "claims.tsv",
        [
            HEADER,
            claims_row("1", "exp/a", "approximation-lost radius", "holds"),
            claims_row("1", "exp/b", "crossing points", "inconclusive", "1"),
            claims_row("2c", "pol/a", "crossing points", "fails"),
        ],
    )
    block = "\n".join(docs.block_default(tmp_path, tmp_path))
    assert "before §7" not in block
    assert "| 1 | 1 | 0 | 1 | 2 |" in block and "| 2c | 0 | 1 | 0 | 1 |" in block
    assert "| all | 1 | 1 | 1 | 3 |" in block
    assert "The 2 decided rows:" in block and "pol/a" in block and "exp/b" not in block
    assert "Seed halves: not yet run" in block


def test_an_old_claims_table_is_converted_with_a_note(docs, tmp_path):
    write(
        tmp_path / "claims.tsv",
        [
            "claim\tsetting\tmeasure\texpected\tmeasured\tholds",
            "1\texp/a lost\tlost\tdoes not shrink\tslope 0.2\ttrue",
            "3\tpol/a lost\tlost\tratio >= 2\tratio 1\tfalse",
            "5\tnonlinear targets\tnone\tlike 2\tnot evaluated\tn/a",
        ],
    )
    block = "\n".join(docs.block_default(tmp_path, tmp_path))
    assert "decided by the rules before §7" in block
    assert "| all | 1 | 1 | 1 | 3 |" in block
    verdicts = write(tmp_path / "verdicts_claims.tsv", [HEADER, claims_row("1", "x", "r", "holds")])
    assert verdicts.exists()
    text = "\n".join(docs.block_verdicts(tmp_path, tmp_path))
    assert "Not compared with the default run" in text


def test_the_verdicts_section_compares_with_the_default_and_counts_contradictions(docs, tmp_path):
    assert "Claims: not yet run" in "\n".join(docs.block_verdicts(tmp_path, tmp_path))
    default = [
        claims_row("1", "exp/a", "approximation-lost radius", "inconclusive", "1"),
        claims_row("2c", "pol/a", "crossing points", "holds"),
    ]
    write(tmp_path / "claims.tsv", [HEADER, *default])
    write(
        tmp_path / "verdicts_claims.tsv",
        [
            HEADER,
            claims_row("1", "exp/a", "approximation-lost radius", "holds"),
            claims_row("2c", "pol/a", "crossing points", "holds"),
            claims_row("2c", "pol/a l2", "crossing points", "fails"),
        ],
    )
    halves = "claim\tsetting\treading\tmeasure\tverdict_a\tseeds_a\tverdict_b\tseeds_b\t"
    halves += "decided_by\tcontradicts"
    write(
        tmp_path / "verdicts_seed_halves.tsv",
        [
            halves,
            "1\texp/a\tr\tlost\tholds\t5\tfails\t5\tt test\tTrue",
            "2c\tpol/a\tr\tcrossing\tholds\t5\tholds\t5\tt test\tFalse",
        ],
    )
    text = "\n".join(docs.block_verdicts(tmp_path, tmp_path))
    assert "Decided: 3 of 3 rows (holds 2, fails 1, inconclusive 0)." in text
    assert "2 rows in both tables, 1 with another verdict; rows only in this table: 1" in text
    assert "| 1 | exp/a | approximation-lost radius | lost | inconclusive | holds |" in text
    assert "): 1 of 2 rows contradict" in text


def test_bench_tables_come_from_the_committed_logs(docs):
    gpu = "\n".join(docs.block_gpu(ROOT, ROOT / "docs/bench"))
    assert "docs/bench/gpu_h200.log" in gpu and "r=720" in gpu
    cpu = "\n".join(docs.block_cpu(ROOT, ROOT / "docs/bench"))
    assert "docs/bench/cpu_h200_host.log" in cpu and "| hardtanh, float32 (default) | 64 |" in cpu
