"""The report's first section: the signal chain of every run, and what it means in words.

One table per hop, each score with its chance level and 95% interval (eval.signal), then the
continuous score (the correct option's log-probability margin over the best wrong one) with
and without the image, paired by question. ``findings`` states in plain words, for the top of
the page, where each run's chain breaks and which categories the image does not help.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from visual_priors.analysis import curves
from visual_priors.analysis import report_format as fmt
from visual_priors.eval.signal import HOP_NAMES, describe_interval

_e = fmt.esc


def _runs(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    key = lambda r: (curves.natural_key(str(r.get("mixture"))), float(r.get("params") or 0),
                     float(r.get("tokens") or 0), str(r.get("run")))
    return sorted((r for r in results if r.get("chain") or r.get("signal")), key=key)


def _pp(block: Mapping | None) -> str:
    """A difference in points with its interval and z: '+12.3 [6.1, 18.5], z 3.9'."""
    if not block or block.get("mean") is None:
        return "n/a"
    lo, hi = block.get("ci", [float("nan")] * 2)
    return (f"{100 * block['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], "
            f"z {block.get('z', float('nan')):.1f}")


def _margin(block: Mapping | None) -> str:
    if not block or block.get("mean") is None:
        return "n/a"
    lo, hi = block.get("ci", [float("nan")] * 2)
    return f"{block['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def findings(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain sentences: each run's verdict, and every category where the image is within noise
    of blind (the paired interval of image minus blind reaches zero)."""
    out = []
    for r in _runs(results):
        v = r.get("chain_verdict") or {}
        if v.get("text"):
            out.append(f"{r.get('run')}: {v['text']}.")
        diff = ((r.get("signal") or {}).get("image_minus_blind") or {}).get("accuracy", {}).get("categories", {})
        flat = [c for c, b in diff.items() if not b.get("ci") or b["ci"][0] <= 0]
        if flat:
            out.append(f"{r.get('run')}: with the image no better than blind, within noise, on "
                       + ", ".join(curves.category_label(c) for c in sorted(flat)) + ".")
    return out


def _chain_tables(runs: Sequence[Mapping[str, Any]], cats: Sequence[str]) -> str:
    probes = sorted({p for r in runs for p in ((r.get("chain") or {}).get("H1") or {})})
    h1 = [[_e(r.get("run"))] + [describe_interval(((r.get("chain") or {}).get("H1") or {}).get(p, {}))
                                 for p in probes] for r in runs]
    chance1 = {p: next((((r.get("chain") or {}).get("H1") or {}).get(p, {}).get("chance") for r in runs
                        if ((r.get("chain") or {}).get("H1") or {}).get(p)), None) for p in probes}
    head1 = ["run"] + [f"{_e(p)} (chance {fmt.pct(chance1[p])})" for p in probes]
    h23 = []
    for r in runs:
        c = r.get("chain") or {}
        h2, h3 = c.get("H2") or {}, c.get("H3") or {}
        h23.append([_e(r.get("run")),
                    describe_interval(h2.get("all", {})) + (f" (chance {fmt.pct(h2.get('chance'))})" if h2 else ""),
                    describe_interval(h3.get("heldout", {})), describe_interval(h3.get("train", {}))])
    h45 = []
    for r in runs:
        s = r.get("signal") or {}
        row = [_e(r.get("run"))]
        for c in cats:
            img = s.get("image", {}).get("accuracy", {}).get("categories", {}).get(c, {})
            bld = s.get("blind", {}).get("accuracy", {}).get("categories", {}).get(c, {})
            dsc = s.get("described", {}).get("accuracy", {}).get("categories", {}).get(c, {})
            diff = s.get("image_minus_blind", {}).get("accuracy", {}).get("categories", {}).get(c)
            row.append(f"{describe_interval(dsc)}<br>{describe_interval(img)} / {describe_interval(bld)}"
                       f"<br>{_pp(diff)}")
        h45.append(row)
    margins = []
    for r in runs:
        s = r.get("signal") or {}
        row = [_e(r.get("run"))]
        for c in cats + ["overall"]:
            get = (lambda k: s.get(k, {}).get("margin", {}).get("categories", {}).get(c)) if c != "overall" else (
                lambda k: s.get(k, {}).get("margin", {}).get("overall"))
            row.append(f"{_margin(get('image'))} / {_margin(get('blind'))}<br>"
                       f"diff {_margin(get('image_minus_blind'))}")
        margins.append(row)
    held = []
    for r in runs:
        h = (r.get("signal") or {}).get("heldout_facts")
        if h:
            held.append([_e(r.get("run")), _pp(h["accuracy"]["overall"]), _margin(h["margin"]["overall"]),
                         str(h["accuracy"]["overall"].get("n", ""))])
    cat_head = [_e(curves.category_label(c)) for c in cats]
    parts = [
        "<h3>H1 encoder: linear probes of the frozen tokens (held-out images)</h3>",
        fmt.table(head1, h1, left=1),
        "<h3>H2 connector and H3 text knowledge</h3>",
        "<p>H2: after stage 1, the model's own caption of a held-out single-object image against the "
        "same caption naming each other kind. H3: the pre-trained LLM on text fact questions "
        "(chance 25%), for kinds whose facts appear only in pre-training text and for the others.</p>",
        fmt.table(["run", "H2 names the kind", "H3 held-out kinds", "H3 other kinds"], h23, left=1),
        "<h3>H4 perfect perception and H5 vision, per category</h3>",
        "<p>Each cell: H4, the question asked about the scene's true description (no image); then "
        "with the image / blind; then image minus blind in points, paired by question, with its "
        "95% interval and z.</p>",
        fmt.table(["run"] + cat_head, h45, left=1),
        "<h3>Continuous score: log-probability margin of the correct option</h3>",
        "<p>Per question, log p(correct) minus the best wrong option's (summed over the option's "
        "tokens; positive means answered right); mean per category with its 95% interval, with "
        "the image / blind, and their paired difference.</p>",
        fmt.table(["run"] + cat_head + ["overall"], margins, left=1),
    ]
    if held:
        parts += ["<h3>Facts from pre-training text only</h3>",
                  "<p>Questions whose answer needs a fact of a held-out kind (stated in no "
                  "multimodal data): image minus blind, paired, accuracy in points and margin.</p>",
                  fmt.table(["run", "accuracy difference", "margin difference", "questions"], held, left=1)]
    return "\n".join(parts)


def signal_section(results: Sequence[Mapping[str, Any]]) -> str:
    """The signal-chain section, or '' when no run carries one."""
    runs = _runs(results)
    if not runs:
        return ""
    cats = curves.categories_of(runs)
    hops = ", ".join(f"{h} {n}" for h, n in HOP_NAMES.items())
    return ('<h2 id="signal">Signal chain</h2>\n'
            f"<p>What each link from pixels and text to the answer carries ({_e(hops)}). A hop holds "
            "when its interval's lower end clears chance (H5: clears blind).</p>\n"
            + "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in findings(runs)) + "</ul>\n"
            + _chain_tables(runs, cats))
