"""HTML and JSON formatting shared by the report's modules.

Cells passed to ``table`` arrive already escaped. Numbers: ``num`` writes a float unrounded (the
shortest repr that reads back to the same float), ``pct`` a fraction as a percentage with two
decimals, ``plain`` to a few significant digits; missing or non-finite values print as an em
dash. ``jsonable`` makes strict JSON of numpy values (NaN and inf become null).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Tables longer than this many rows start collapsed.
LONG_TABLE = 30

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.meta{color:#555}.form{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f6f6f6;
padding:.3em .6em;display:inline-block}.note{color:#666;font-size:.85em}
.missing{color:#8a6d00;background:#fff8e1;padding:.3em .6em;display:inline-block}
img{max-width:100%;height:auto;border:1px solid #eee}
details{margin:.6em 0}summary{cursor:pointer;color:#333}
nav ul{columns:2;font-size:.9em}
.yes{color:#1a7f37;font-weight:600}.no{color:#a40e26}
.verdict{font-weight:600;padding:.1em .4em;border-radius:3px;white-space:nowrap}
.v-reproduced{background:#dafbe1;color:#1a7f37}.v-contradicted{background:#ffebe9;color:#a40e26}
.v-inconclusive{background:#fff8c5;color:#7d4e00}.v-not-run{background:#eee;color:#666}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def finite(v: Any) -> bool:
    try:
        return v is not None and not isinstance(v, bool) and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def count(v: Any) -> str:
    if not finite(v):
        return "—"
    v = float(v)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.0f}"


def sci(v: Any) -> str:
    return f"{float(v):.3e}" if finite(v) else "—"


def pct(v: Any) -> str:
    return f"{100.0 * float(v):.2f}" if finite(v) else "—"


def pm(acc: Any, se: Any) -> str:
    if not finite(acc):
        return "—"
    return pct(acc) + (f" ± {100.0 * float(se):.2f}" if finite(se) else "")


def num(v: Any) -> str:
    # Unrounded: the shortest repr that reads back to the same float.
    return repr(float(v)) if finite(v) else "—"


def plain(v: Any, digits: int = 4) -> str:
    return f"{float(v):.{digits}g}" if finite(v) else "—"


def interval(lo: Any, hi: Any, fmt=num) -> str:
    """``[lo, hi]`` with each end written by ``fmt``; an em dash when either end is missing."""
    return f"[{fmt(lo)}, {fmt(hi)}]" if finite(lo) and finite(hi) else "—"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Cells arrive already escaped; the first ``left`` columns are left-aligned."""
    cls = lambda i: ' class="l"' if i < left else ""  # noqa: E731
    out = ["<table>", "<tr>" + "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(head))
           + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row))
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def details(summary: str, body: str, *, open_: bool = False) -> str:
    """A collapsible block; ``summary`` arrives escaped."""
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>\n{body}\n</details>"


def long_table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, *,
               what: str = "rows") -> str:
    """A table that starts collapsed when it has more than ``LONG_TABLE`` rows."""
    body = table(head, rows, left)
    if len(rows) <= LONG_TABLE:
        return body
    return details(f"{len(rows)} {esc(what)} (click to expand)", body)


def missing(text: str) -> str:
    """The one-line note a section shows instead of a figure; ``text`` arrives escaped."""
    return f'<p class="missing">{text}</p>'


def image(name: str, alt: str) -> str:
    return f'<img src="{esc(name)}" alt="{esc(alt)}">'


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "category"


def jsonable(x: Any) -> Any:
    # Strict JSON: numpy scalars and arrays become Python values, NaN and inf become null.
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
