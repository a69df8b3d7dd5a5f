"""Project consistency: pinned environments agree, every config key is documented."""

from __future__ import annotations

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


@pytest.mark.parametrize("env", ["torch.yaml", "plot.yaml"])
def test_conda_envs_pin_the_same_versions_as_requirements(env):
    pins, reqs = env_pins(ROOT / "envs" / env), requirement_pins()
    assert pins, env
    for name, version in pins.items():
        if name == "python":
            continue
        assert reqs.get(name) == version, f"{env}: {name}={version}, requirements: {reqs.get(name)}"


def test_every_rule_uses_a_pinned_env_and_has_a_log():
    rules = (ROOT / "workflow/rules").glob("*.smk")
    text = "\n".join(p.read_text() for p in rules)
    blocks = re.split(r"^rule ", text, flags=re.MULTILINE)[1:]
    for block in blocks:
        name = block.split(":")[0]
        if name == "figures":  # a named target, no job of its own
            continue
        assert "conda:" in block and "log:" in block, name


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
