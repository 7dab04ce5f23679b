"""Text data throughput: segment building, labelling, and the mixing pipeline against the trainer.

    python benchmarks/data_pipeline.py [--tokens 1500000] [--draw 3000000] [--consumer-steps 20]

On the world's text with the tiny profile's tokenizer and segment length, it measures:
tokenising sources into segment shards (in this process and with worker processes, for the
tiny shards and for one large source), labelling
segments with the lexical labeller, and drawing packed batches from on-disk segment sets for a
source mixture, a category-sweep point and a grid cell, at the tiny profile's batch shape and at
the paper's (2,048-token rows). The trainer's consumption is measured on the largest tiny scale
with the real training loop (benchmarks/train_throughput.py), so the ratio printed last is what
the pipeline can feed against what training eats, on the same machine in the same session.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from visual_priors.config import profiles, scales
from visual_priors.data import labelling, pipeline, segments, sources, tokenizer
from visual_priors.suite import host_memory
from visual_priors.world import World

MIX_SOURCES = ("web_crawl", "encyclopedia", "academic", "literature", "math", "code")
MIXTURES = ("mix6", "category:visual_concept=50", "grid:reasoning=60,visual=15")


def _draw_rate(pool, mixture, seq_len, batch, tokens) -> float:
    data = pipeline.PretrainData(pool, mixture, seq_len=seq_len, batch_size=batch, seed=0)
    next(data)  # grain's first element builds the shuffles
    start, drawn = time.perf_counter(), data.counter.total
    while data.counter.total - drawn < tokens:
        next(data)
    return (data.counter.total - drawn) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_500_000, help="tokens per source (the tiny shard)")
    parser.add_argument("--draw", type=int, default=3_000_000, help="tokens drawn per mixture")
    parser.add_argument("--parallel-tokens", type=int, default=8_000_000,
                        help="one source's budget for the in-process vs worker-process comparison")
    parser.add_argument("--consumer-scale", default=scales.TINY_SCALES[-1])
    parser.add_argument("--consumer-steps", type=int, default=20)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    tiny = profiles.get("tiny")
    world = World(seed=0)
    rows: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                  "date": datetime.date.today().isoformat()}
    with tempfile.TemporaryDirectory() as d:
        tok = tokenizer.build_tokenizer(MIX_SOURCES, world, tiny.data.vocab_size, d,
                                        sample_chars=tiny.data.tokenizer_sample_chars)
        build = {}
        for workers in (0, os.cpu_count() or 1):
            start = time.perf_counter()
            sets = {name: segments.build_segments(
                        sources.get_source(name), world, tok, Path(d) / f"w{workers}",
                        segment_tokens=tiny.data.segment_tokens, n_tokens=args.tokens,
                        workers=workers, progress=False) for name in MIX_SOURCES}
            build[workers] = sum(s.n_tokens for s in sets.values()) / (time.perf_counter() - start)
        rows["segments_tokens_per_s"] = build
        big = {}
        for workers in (0, os.cpu_count() or 1):
            start = time.perf_counter()
            one = segments.build_segments(
                sources.get_source("web_crawl"), world, tok, Path(d) / f"big{workers}",
                segment_tokens=tiny.data.segment_tokens, n_tokens=args.parallel_tokens,
                workers=workers, progress=False)
            big[workers] = one.n_tokens / (time.perf_counter() - start)
        rows["segments_one_large_source_tokens_per_s"] = big
        lexical = labelling.get_labeller("lexical")
        start = time.perf_counter()
        labels = {n: segments.label_segments(s, lexical, tok, progress=False) for n, s in sets.items()}
        rows["label_tokens_per_s"] = sum(s.n_tokens for s in sets.values()) / (time.perf_counter() - start)
        pool = pipeline.SegmentPool(sets, labels)
        shapes = {"tiny": (tiny.pretrain.seq_len, tiny.pretrain.batch_size), "paper rows": (2048, 8)}
        rows["draw_tokens_per_s"] = {
            f"{mixture} @ {shape}": _draw_rate(pool, mixture, seq, batch, args.draw)
            for mixture in MIXTURES for shape, (seq, batch) in shapes.items()}
    sys.path.insert(0, str(Path(__file__).parent))
    from train_throughput import measure  # noqa: E402

    # Only tokens/s are used here, so the peak (which only scales MFU) is a placeholder.
    consumer = measure(args.consumer_scale, args.consumer_steps, peak=1.0,
                       seq=tiny.pretrain.seq_len, batch=tiny.pretrain.batch_size, dtype="float32",
                       remat="none", scan=False)
    rows["consumer"] = {"scale": args.consumer_scale, "tokens_per_s": consumer["tokens_per_s"]}
    slowest = min(v for k, v in rows["draw_tokens_per_s"].items() if k.endswith("@ tiny"))
    rows["feed_ratio"] = slowest / consumer["tokens_per_s"]

    print(f"machine: {rows['machine']}  date: {rows['date']}")
    for workers, rate in build.items():
        print(f"segments (tokenise + cut + shard), {workers} worker processes: {rate:,.0f} tok/s")
    for workers, rate in big.items():
        print(f"segments of one {args.parallel_tokens:,}-token source, {workers} worker processes: "
              f"{rate:,.0f} tok/s")
    print(f"lexical labelling: {rows['label_tokens_per_s']:,.0f} tok/s")
    for name, rate in rows["draw_tokens_per_s"].items():
        print(f"draw {name}: {rate:,.0f} tok/s")
    print(f"trainer {args.consumer_scale} consumes {consumer['tokens_per_s']:,.0f} tok/s; the slowest "
          f"tiny-shape mixture feeds {rows['feed_ratio']:.0f}x that")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
