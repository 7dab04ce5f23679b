"""Sources, tokenizer, token streams and the grain mixing pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from visual_priors.data import segments, sources, tokenizer
from visual_priors.world import GENRES, World

VOCAB = 512
SAMPLE_CHARS = 300_000
TOKENIZER_SOURCES = ("web_crawl", "academic", "literature", "math", "code")
STREAM_SOURCES = ("web_crawl", "math", "code")
STREAM_TOKENS = 12_000
SEGMENT_TOKENS = 64


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="module")
def tok(world, cache_dir):
    return tokenizer.build_tokenizer(TOKENIZER_SOURCES, world, VOCAB, cache_dir,
                                     sample_chars=SAMPLE_CHARS)


@pytest.fixture(scope="module")
def segsets(world, tok, cache_dir):
    return {name: segments.build_segments(sources.get_source(name), world, tok, cache_dir,
                                          segment_tokens=SEGMENT_TOKENS, n_tokens=STREAM_TOKENS,
                                          workers=0, docs_per_shard=16, progress=False)
            for name in STREAM_SOURCES}


# --- sources -------------------------------------------------------------------------------


def test_registry_has_paper_and_genre_sources():
    for name in ("web_crawl", "encyclopedia", "academic", "literature", "math", "code"):
        assert name in sources.SOURCES
    for genre in GENRES:
        name = "world_code" if genre == "code" else genre
        assert sources.get_source(name).composition == {genre: 1.0}
    assert all(s.description for s in sources.SOURCES.values())
    assert sources.get_source("academic").composition == {"science": 0.75, "math": 0.25}


def test_unknown_source_error_lists_valid_names():
    with pytest.raises(ValueError) as err:
        sources.get_source("webcrawl")
    message = str(err.value)
    assert "webcrawl" in message
    for name in ("web_crawl", "encyclopedia", "academic", "literature", "math", "code"):
        assert name in message


def test_sources_are_deterministic_and_random_access(world):
    src = sources.get_source("literature")
    docs = src.documents(world, "train", 0, 10)
    assert docs == src.documents(world, "train", 0, 10)
    assert docs[4:7] == src.documents(world, "train", 4, 3)
    assert all(isinstance(d, str) and d for d in docs)
    # Position 9 is the second round's second slot: the first round holds one visual_concept.
    assert src.locate(9) == ("visual_concept", 1)
    assert docs[9] == world.document("visual_concept", 1, "train").text


def test_stdlib_code_source_is_real_python(world):
    code = sources.get_source("code")
    docs = code.documents(world, "train", 0, 8)
    assert docs == code.documents(world, "train", 0, 8)
    stdlib_docs = [d for i, d in enumerate(docs) if code.locate(i)[0] == sources.STDLIB]
    assert len(stdlib_docs) == 6
    assert sum(("def " in d or "import " in d or "class " in d) for d in stdlib_docs) >= 4
    assert all(1000 <= len(d) <= 64_000 for d in stdlib_docs)
    # Every fourth document is the world's own code genre.
    assert docs[3] == world.document("code", 0, "train").text
    # Read in sorted path order, straight from the files, outside site-packages.
    corpus = sources.StdlibCorpus("train")
    rel = [p.relative_to(corpus.root).as_posix() for p in corpus.files]
    assert rel == sorted(rel) and not any("site-packages" in r for r in rel)
    assert corpus.files[0].read_text(encoding="utf-8")[:200] == docs[0][:200]
    # Held-out files differ from training ones.
    test_corpus = sources.StdlibCorpus("test")
    assert not set(corpus.files) & set(test_corpus.files) and test_corpus.files


# --- tokenizer -----------------------------------------------------------------------------


def test_tokenizer_round_trips_text(tok):
    texts = [
        "The small red cube sits left of the blue sphere.",
        "def area(w, h):\n    return w * h\n\n\nprint(area(3, 4))  # 12\n",
        "  leading spaces, trailing\ttabs\t and 3.14159 digits ",
        "Unicode: café, naïve, 漢字, emoji 🙂",
    ]
    for text in texts:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.vocab_size == VOCAB
    assert len({tok.pad_id, tok.bos_id, tok.eos_id}) == 3
    assert tok.decode([tok.bos_id, *tok.encode("abc"), tok.eos_id, tok.pad_id]) == "abc"


def test_tokenizer_save_and_load(tok):
    again = tokenizer.load_tokenizer(tok.path)
    assert again.fingerprint == tok.fingerprint
    assert again.encode("a blue ball") == tok.encode("a blue ball")


def test_build_tokenizer_hits_cache(world, tok, cache_dir, monkeypatch):
    mtime = tok.path.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been loaded")

    monkeypatch.setattr(tokenizer, "train_tokenizer", no_training)
    # Source order does not matter to the key.
    again = tokenizer.build_tokenizer(tuple(reversed(TOKENIZER_SOURCES)), world, VOCAB, cache_dir,
                                      sample_chars=SAMPLE_CHARS)
    assert again.path == tok.path and tok.path.stat().st_mtime_ns == mtime
    assert again.fingerprint == tok.fingerprint
    with pytest.raises(AssertionError):
        tokenizer.build_tokenizer(TOKENIZER_SOURCES, world, VOCAB + 64, cache_dir,
                                  sample_chars=SAMPLE_CHARS)


# --- token streams -------------------------------------------------------------------------


def test_segments_cut_documents_and_reassemble_them(world, tok, segsets):
    segs = segsets["math"]
    assert segs.n_tokens >= STREAM_TOKENS and segs.meta["n_shards"] > 1
    assert segs.lengths.max() <= SEGMENT_TOKENS and int(segs.lengths.sum()) == segs.n_tokens
    # The segments of a document, in order, are its tokens followed by EOS.
    for doc in (0, 5):
        idx = np.flatnonzero(segs.documents == doc)
        ids = np.concatenate([segs.tokens(i) for i in idx])
        assert ids[-1] == tok.eos_id and tok.eos_id not in ids[:-1]
        assert tok.decode(ids[:-1]) == sources.get_source("math").document(world, doc)
        assert all(segs.lengths[i] == SEGMENT_TOKENS for i in idx[:-1])
    # A repeated call reuses the set on disk.
    again = segments.build_segments(sources.get_source("math"), world, tok, segs.path.parent,
                                    segment_tokens=SEGMENT_TOKENS, n_tokens=STREAM_TOKENS,
                                    workers=0, docs_per_shard=16, progress=False)
    assert again.path == segs.path


def test_segment_truth_comes_from_the_world_label_spans(world, tok, segsets):
    lit = segsets["web_crawl"]
    assert lit.truth_known.all()
    for i in range(0, len(lit), 7):
        doc = world.document("web", int(lit.documents[i]), "train")
        assert set(np.flatnonzero(lit.truth[i])) <= {segments.LABELS.index(l) for l in doc.labels}
    # Stdlib code is real code, whose labels the world does not know.
    code = segsets["code"]
    assert 0 < code.truth_known.mean() < 1


def test_parallel_workers_write_the_same_segments(world, tok, tmp_path):
    args = dict(segment_tokens=SEGMENT_TOKENS, n_tokens=6_000, docs_per_shard=8, progress=False)
    inline = segments.build_segments(sources.get_source("literature"), world, tok, tmp_path / "a",
                                     workers=0, **args)
    spawned = segments.build_segments(sources.get_source("literature"), world, tok, tmp_path / "b",
                                      workers=2, **args)
    np.testing.assert_array_equal(inline.lengths, spawned.lengths)
    np.testing.assert_array_equal(inline.truth, spawned.truth)
    for i in range(0, len(inline), 5):
        np.testing.assert_array_equal(inline.tokens(i), spawned.tokens(i))


def test_corrupt_or_partial_segment_sets_are_named(world, tok, segsets, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(segsets["math"].path, copy)
    (copy / "lengths.npy").write_bytes(b"not an npy")
    with pytest.raises(ValueError, match="corrupt"):
        segments.SegmentSet(copy)
    with pytest.raises(FileNotFoundError, match="not a finished segment set"):
        segments.SegmentSet(tmp_path)
    with pytest.raises(ValueError, match="endless: give n_tokens"):
        segments.build_segments(sources.get_source("math"), world, tok, tmp_path, progress=False)


def test_heldout_segments_differ_from_train(world, tok, segsets, cache_dir):
    held = segments.build_segments(sources.get_source("math"), world, tok, cache_dir, split="test",
                                   segment_tokens=SEGMENT_TOKENS, n_tokens=2_000, workers=0,
                                   progress=False)
    assert held.meta["split"] == "test" and held.n_tokens >= 2_000
    train = segsets["math"].stream(200)
    assert not np.array_equal(held.stream(200)[:200], train[:200])
