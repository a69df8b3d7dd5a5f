"""Project consistency: pinned environments agree, every config key is documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def env_pins(path: Path) -> dict[str, str]:
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:==|=)\s*([0-9][^\s]*)", item.strip())
            if match:
                pins[match.group(1).lower()] = match.group(2)
    return pins


def test_torch_is_pinned_exactly():
    assert requirement_pins()["torch"] == "2.13.0"


ENVS = sorted(p.name for p in (ROOT / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env", ENVS)
def test_conda_envs_pin_the_same_versions_as_requirements(env):
    pins, reqs = env_pins(ROOT / "envs" / env), requirement_pins()
    assert pins, env
    for name, version in pins.items():
        if name == "python":
            continue
        assert reqs.get(name) == version, f"{env}: {name}={version}, requirements: {reqs.get(name)}"


def test_every_rule_uses_a_pinned_env_and_has_a_log():
    """Every job's rule names a conda env file that exists and pins every package it lists
    (the pins themselves are compared with requirements.txt above), and has a log."""
    for path in (ROOT / "workflow/rules").glob("*.smk"):
        blocks = re.split(r"^rule ", path.read_text(), flags=re.MULTILINE)[1:]
        for block in blocks:
            name = block.split(":")[0]
            if name == "figures":  # a named target, no job of its own
                continue
            assert "log:" in block, name
            env = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
            assert env, f"{name}: no conda env"
            env_file = (path.parent / env.group(1)).resolve()
            assert env_file.is_file(), f"{name}: {env.group(1)} does not exist"
            deps = yaml.safe_load(env_file.read_text())["dependencies"]
            listed = [d for d in deps if isinstance(d, str) and d != "pip"]
            listed += [d for d in deps if isinstance(d, dict) for d in d["pip"]]
            unpinned = [d for d in listed if not re.search(r"=\s*[0-9]", d)]
            assert not unpinned, f"{name}: {env.group(1)} leaves {unpinned} unpinned"


def rule_blocks() -> dict[str, str]:
    """Every rule of workflow/rules/*.smk by name (a rule built in a loop by its name's
    f-string prefix), with its text."""
    blocks = {}
    for path in (ROOT / "workflow/rules").glob("*.smk"):
        text = path.read_text()
        for block in re.split(r"^(?=[ ]*rule\b)", text, flags=re.MULTILINE)[1:]:
            named = re.match(r"\s*rule (\w+):", block) or re.search(r'name:\s*\n\s*f"(\w+)', block)
            blocks[named.group(1)] = block
    return blocks


def test_every_job_declares_its_memory_and_runtime():
    """Cluster executors size each job from mem_mb and runtime (the profiles only raise
    them for the heavy rules)."""
    blocks = rule_blocks()
    jobs = {n: b for n, b in blocks.items() if n not in ("all", "figures")}
    assert {"train_students", "check_claims", "plot_training"} <= set(jobs)
    for name, block in jobs.items():
        resources = block.split("resources:")[1] if "resources:" in block else ""
        assert re.search(r"^\s+mem_mb=\d+", resources, re.M), name
        assert re.search(r"^\s+runtime=\d+", resources, re.M), name


def test_table_and_figure_rules_are_local_and_torch_free():
    """The cheap aggregations and the figures run on the submitting host (localrules) in
    an environment without torch; the rules that import torch use envs/torch.yaml."""
    local = set()
    for path in (ROOT / "workflow/rules").glob("*.smk"):
        for body in re.findall(r"^localrules:\n((?:\s+\w+,?\n)+)", path.read_text(), re.M):
            local |= set(re.findall(r"\w+", body))
    torch_free = yaml.safe_load((ROOT / "envs/tables.yaml").read_text())["dependencies"]
    assert not any("torch" in str(d) for d in torch_free)
    for name, block in rule_blocks().items():
        script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+\.py)"', block)
        if not script:
            continue
        code = (ROOT / "workflow/scripts" / script.group(1)).read_text()
        heavy = re.search(
            r"^(import torch|from curse_memory\.(model|training|perturbation|"
            r"memory|targets) import)",
            code,
            re.M,
        )
        env = re.search(r'conda:\s*\n\s*"\.\./\.\./envs/(\w+\.yaml)"', block).group(1)
        if heavy:
            assert env == "torch.yaml" and name not in local, name
        else:
            assert env == "tables.yaml" and name in local, name


def schema_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, sub in node.get("properties", {}).items():
        keys.append(key)
        keys += schema_keys(sub, f"{prefix}{key}.")
    return keys


def test_every_config_key_is_documented():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    keys = schema_keys(schema) + schema_keys(schema["$defs"]["target"])
    doc = (ROOT / "config/README.md").read_text()
    missing = [k for k in keys if f"`{k}`" not in doc]
    assert not missing, missing


def test_every_schema_key_has_a_type_and_description():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key}"
            assert "type" in sub or "$ref" in sub, f"{path}{key}"
            walk(sub, f"{path}{key}.")

    walk(schema, "")
    walk(schema["$defs"]["target"], "targets.*.")


def test_readme_quick_start_has_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start")[1].split("```")[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands[1:] == ["make run", "make test"]  # after the "bash" fence tag
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_every_method_reference_resolves_to_a_section_of_docs_method():
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs/method.md").read_text(), re.M))
    assert {"1", "2", "3", "4", "5", "6"} <= sections
    cited = {}
    for path in [
        *ROOT.glob("workflow/**/*.py"),
        *ROOT.glob("workflow/**/*.smk"),
        ROOT / "README.md",
    ]:
        for number in re.findall(r"method §(\d+)", path.read_text()):
            cited.setdefault(number, []).append(path.name)
    assert cited, "no method § reference found"
    assert set(cited) <= sections, {n: cited[n] for n in set(cited) - sections}


def test_grid_names_agree_between_the_schema_the_model_and_the_figures():
    """Parameterisations, activations and structures are defined in the model; the schema
    and the figures' orders must list the same names."""
    import sys

    sys.path.insert(0, str(ROOT / "workflow/scripts"))
    from curse_memory import model, plotting

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    students = schema["properties"]["students"]["properties"]
    for key, names, order in (
        ("parameterisations", model.PARAMETERISATIONS, plotting.PARAM_ORDER),
        ("activations", model.ACTIVATIONS, plotting.ACTIVATION_ORDER),
        ("structures", model.STRUCTURES, plotting.STRUCTURE_ORDER),
    ):
        assert students[key]["items"]["enum"] == list(names) == list(order), key
    assert set(plotting.PARAM_COLORS) == set(model.PARAMETERISATIONS)
    # families: the built-in names, or a plug-in's package.module:Name
    pattern = students["families"]["items"]["pattern"]
    assert all(re.fullmatch(pattern, name) for name in model.FAMILIES)
    assert re.fullmatch(pattern, "plugin_family.module:GatedLinear")
    assert not re.fullmatch(pattern, "Bad Name") and not re.fullmatch(pattern, "a:b:c")


def test_plot_rules_of_the_makefile_are_the_rules_of_figures_smk():
    rules = re.findall(
        r"^rule (plot_\w+):", (ROOT / "workflow/rules/figures.smk").read_text(), re.M
    )
    make = (ROOT / "Makefile").read_text()
    listed = re.findall(r"^PLOT_RULES \+?:?= (.*)$", make, re.M)
    assert sorted(" ".join(listed).split()) == sorted(rules)


def test_eigenvalue_checks_are_written_once_and_used_by_config_and_model():
    """The Euler and best checks live in curse_memory.checks; the config validation and
    StudentConfig both call them instead of writing their own."""
    import ast

    names = "eig_init_problem", "best_reach_problem"
    checks = (ROOT / "workflow/scripts/curse_memory/checks.py").read_text()
    check_config = next(
        node
        for node in ast.parse(checks).body
        if isinstance(node, ast.FunctionDef) and node.name == "check_config"
    )
    called = {
        n.func.id
        for n in ast.walk(check_config)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    model = (ROOT / "workflow/scripts/curse_memory/model.py").read_text()
    common = (ROOT / "workflow/rules/common.smk").read_text()
    for name in names:
        assert name in called and f"{name}(" in model, name
    assert "check_config(config)" in common
    for text in (common, model):
        assert "* hi >= 2" not in text and "hi * self.dt" not in text


def test_table_and_figure_modules_import_without_torch():
    """The aggregation, claim and figure jobs import these; torch's import would add about
    3 s to each of them (curves holds the readings of E_m(beta) without torch)."""
    import subprocess
    import sys

    code = (
        "import sys; import curse_memory.analysis, curse_memory.curves, curse_memory.tables, "
        "curse_memory.plotting; print(sorted(m for m in ('torch', 'curse_memory.model', "
        "'curse_memory.perturbation') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow/scripts")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_config_readme_tables_are_generated_from_the_schema():
    """config/README.md's key tables are the schema's descriptions, defaults and bounds
    (regenerate with `python scripts/config_docs.py`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts/config_docs.py")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    text = (ROOT / "config/README.md").read_text()
    assert text.count(docs.BEGIN) >= 7  # targets, data, students, train, perturbation, ...
    assert docs.render(text, schema) == text, "run: python scripts/config_docs.py"
