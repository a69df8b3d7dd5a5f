"""Shared fixtures: the repository's paths, its schema and the configs as a run sees them
(an overlay merged over config/config.yaml, curse_memory.checks.merge_config)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT = ROOT / "config/config.yaml"
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def read_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def effective_config(path: Path | str) -> dict:
    """The config of a run with ``--configfile path``: the default, with ``path`` merged
    over it (before the schema's defaults are filled in)."""
    from curse_memory.checks import merge_config

    path = ROOT / path
    default = read_yaml(DEFAULT)
    return (
        default if path.resolve() == DEFAULT.resolve() else merge_config(default, read_yaml(path))
    )


def validated(config: dict) -> dict:
    """``config`` as the workflow validates it: the schema's defaults filled in, then the
    cross-key checks (raises what the workflow raises)."""
    from snakemake.utils import validate

    from curse_memory.checks import check_config

    config = copy.deepcopy(config)
    validate(config, schema=str(SCHEMA))
    check_config(config)
    return config


@pytest.fixture(scope="session")
def default_config() -> dict:
    return read_yaml(DEFAULT)


@pytest.fixture(scope="session")
def schema() -> dict:
    return read_yaml(SCHEMA)


@pytest.fixture(scope="session")
def config_of():
    """``config_of(path)``: the config of a run with ``--configfile path``."""
    return effective_config


@pytest.fixture(scope="session")
def validate_config():
    """``validate_config(config)``: the schema's defaults filled in, then the cross-key
    checks, in process (what workflow/rules/common.smk runs)."""
    return validated
