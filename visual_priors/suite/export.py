"""Every finished run's results as one flat table (Parquet or CSV) for analysis.

One row per run; nested results become dotted columns (`categories.knowledge`,
`benchmarks.count`, `language.perplexity.wikitext`); lists (example answers, judged traces)
stay in results.json and are left out.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from visual_priors.errors import BadValue

FORMATS = (".parquet", ".csv")


def flatten(record: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif not isinstance(value, (list, tuple)):
            out[name] = value
    return out


def table(results: list[dict]) -> pa.Table:
    rows = [flatten(r) for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    # Columns missing from some runs (a benchmark file only some runs had) are null there.
    return pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])


def write(results: list[dict], path: str | Path) -> Path:
    path = Path(path)
    if path.suffix not in FORMATS:
        raise BadValue(f"export to {path}: the suffix must be one of {', '.join(FORMATS)}")
    if not results:
        raise BadValue("no finished runs to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    t = table(results)
    if path.suffix == ".parquet":
        pq.write_table(t, path)
    else:
        pa_csv.write_csv(t, path)
    return path
