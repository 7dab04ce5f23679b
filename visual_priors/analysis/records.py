"""Run records as the analysis reads them, whatever form a study's results arrive in.

A run's results come in two shapes:

- **nested** dicts, as ``suite.executor.collect`` gives them
  (``{"categories": {"knowledge": 0.31}, "language": {"perplexity": {"mean": 20.1}}}``);
- **flat** rows with dotted keys, as ``visual-priors suite export`` writes them
  (``{"categories.knowledge": 0.31, "language.perplexity.mean": 20.1}``, ``suite.export.flatten``),
  in memory (a list of dicts, a pyarrow Table, a pandas DataFrame) or on disk (``.parquet``,
  ``.csv``; or collect's ``results.json``).

``as_records`` turns any of these into a list of nested dicts (``load_export`` adds the same runs
as a flat pandas DataFrame, for notebooks). ``record_value`` reads a dotted
key from one record of either shape, so code that takes single records need not convert.
A value is missing when it is absent, None or NaN; ``as_float`` reads missing and non-numeric
values (including empty strings and booleans) as NaN.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def unflatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """Undo ``suite.export.flatten``: dotted keys become nested dicts; nulls are dropped.

    A table pads the columns a run lacks with nulls (NaN in pandas); dropping them gives back
    the run's own keys.
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        value = _plain(value)
        if isinstance(value, Mapping):
            value = unflatten(value)
        elif _missing(value):
            continue
        node = out
        *parents, leaf = str(key).split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf].update(value)
        else:
            node[leaf] = value
    return out


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return list(data.values()) if isinstance(data, Mapping) else list(data)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        import pyarrow.csv as pa_csv
        return pa_csv.read_csv(path).to_pylist()
    raise ValueError(f"read {path}: the suffix must be .parquet, .csv or .json")


def as_records(data: Any) -> list[dict[str, Any]]:
    """Run results as a list of nested dicts, from any of the forms a study's results take.

    Accepts a list of result dicts (nested or flat), a mapping of run name to result, a pandas
    DataFrame or pyarrow Table of the exported table, or a path to an exported ``.parquet`` /
    ``.csv`` or a ``results.json``.
    """
    if isinstance(data, (str, os.PathLike)):
        data = _read_file(Path(data))
    if hasattr(data, "to_pylist"):
        data = data.to_pylist()
    elif hasattr(data, "to_dict") and hasattr(data, "columns"):
        data = data.to_dict(orient="records")
    elif isinstance(data, Mapping):
        data = list(data.values())
    return [unflatten(r) for r in data]


def record_value(record: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``record[key]`` for a flat row with dotted keys, or the same path through nested dicts."""
    if key in record:
        return record[key]
    cur: Any = record
    for part in key.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def as_float(value: Any) -> float:
    """A number as float; NaN for None, booleans, empty strings and anything not numeric."""
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def float_value(record: Mapping[str, Any], key: str) -> float:
    """The number at a dotted key of a nested or flat record; NaN when missing or not numeric."""
    return as_float(record_value(record, key))


def run_name(record: Mapping[str, Any], index: int) -> str:
    """A record's run name (a paper-table row's recipe), else its position in the list."""
    return str(record.get("run", record.get("recipe", index)))


def load_export(data: Any) -> tuple[list[dict[str, Any]], Any]:
    """A study's runs both ways: ``as_records`` and a flat pandas DataFrame of the same runs.

    The frame has one row per record, in the same order, and one column per dotted key
    (``pandas.json_normalize`` of the records: the columns ``visual-priors suite export``
    writes, less those null in every run). Lists a ``results.json`` carries stay as cells.
    """
    import pandas as pd

    runs = as_records(data)
    return runs, pd.json_normalize(runs) if runs else pd.DataFrame()
