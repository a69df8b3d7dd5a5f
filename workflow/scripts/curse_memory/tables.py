"""Reading the workflow's result tables (tab-separated, long format) back into pandas."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

STR_COLUMNS = (
    "target",
    "family",
    "structure",
    "param",
    "activation",
    "norm",
    "status",
    "subject",
    "kind",
    "stop_reason",
    "decay",
    "measure",
)
BOOL_COLUMNS = ("censored", "lost_censored", "monotone_ok")


def with_family(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df``; a student table written before the family axis (a structure
    column, no family) gets family "rnn", the only family there was."""
    df = df.copy()
    if "structure" in df.columns and "family" not in df.columns:
        df.insert(int(df.columns.get_loc("structure")), "family", "rnn")
    return df


def clean(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a result table: ``with_family``, label columns as str (a column holding
    only the norm "inf" is parsed as a float by pandas), booleans as bool, numbers stored as text as
    numbers (other columns are left alone)."""
    df = with_family(df)
    for col in df.columns:
        if col in STR_COLUMNS:
            df[col] = ["inf" if isinstance(v, float) and math.isinf(v) else str(v) for v in df[col]]
        elif col in BOOL_COLUMNS:
            df[col] = df[col].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
        elif not pd.api.types.is_numeric_dtype(df[col]):  # numbers stored as text
            num = pd.to_numeric(df[col], errors="coerce")
            if num.notna().sum() == df[col].notna().sum():
                df[col] = num
    return df


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a tab-separated result table ("inf" as float inf, label columns as str)."""
    head = pd.read_csv(path, sep="\t", nrows=0)
    dtype = {c: str for c in head.columns if c in STR_COLUMNS}
    return clean(pd.read_csv(path, sep="\t", dtype=dtype, keep_default_na=True))
