"""Copies of the workflow for end-to-end tests, so runs leave the repository untouched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what a run needs; "profiles" is the root link to workflow/profiles (the default profile)
WORKFLOW = ["Snakefile", "profiles", "workflow", "config", "envs", "tests/config"]


def copy_workflow(dst: Path, names=WORKFLOW) -> Path:
    """Copy ``names`` (files, folders, symbolic links) from the repository root to ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = ROOT / name
        if src.is_symlink():
            (dst / name).symlink_to(os.readlink(src))
        elif src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst
