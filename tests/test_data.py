"""Sources, tokenizer, token streams and the grain mixing pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from visual_priors.data import pipeline, sources, tokenizer
from visual_priors.data.pipeline import PretrainData, TokenCounter, TokenWindows
from visual_priors.world import GENRES, World

VOCAB = 512
SAMPLE_CHARS = 300_000
TOKENIZER_SOURCES = ("web_crawl", "academic", "literature", "math", "code")
STREAM_SOURCES = ("web_crawl", "math", "code")
STREAM_TOKENS = 12_000


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
def streams(world, tok, cache_dir):
    return {
        name: pipeline.tokenize_source(name, world, tok, STREAM_TOKENS, cache_dir, progress=False)
        for name in STREAM_SOURCES
    }


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


def test_tokenize_source_stream(world, tok, streams, cache_dir):
    path = streams["math"]
    tokens = pipeline.load_tokens(path)
    info = pipeline.stream_info(path)
    assert tokens.dtype == np.int32 and tokens.size == info["n_tokens"] >= STREAM_TOKENS
    assert tokens[-1] == tok.eos_id
    assert int((tokens == tok.eos_id).sum()) == info["n_documents"]
    first_doc = tokens[: int(np.argmax(tokens == tok.eos_id))]
    assert tok.decode(first_doc) == sources.get_source("math").documents(world, "train", 0, 1)[0]
    # Cached: the same arguments return the same file untouched.
    mtime = path.stat().st_mtime_ns
    again = pipeline.tokenize_source("math", world, tok, STREAM_TOKENS, cache_dir, progress=False)
    assert again == path and path.stat().st_mtime_ns == mtime


def test_heldout_stream_differs_from_train(world, tok, streams, cache_dir):
    path = pipeline.heldout_tokens("math", world, tok, 2_000, cache_dir, progress=False)
    assert pipeline.stream_info(path)["split"] == "test"
    held = pipeline.load_tokens(path)
    train = pipeline.load_tokens(streams["math"])
    assert held.size >= 2_000 and not np.array_equal(held[:200], train[:200])


# --- packing and mixing --------------------------------------------------------------------


def test_windows_are_seq_len_plus_one_and_tile_the_stream():
    stream = np.arange(1000, dtype=np.int32)
    windows = TokenWindows(stream, 17)
    assert len(windows) == 1000 // 17
    parts = [windows[i] for i in range(len(windows))]
    assert all(p.shape == (17,) and p.dtype == np.int32 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), stream[: len(windows) * 17])
    assert 1000 - len(windows) * 17 < 17
    with pytest.raises(IndexError):
        windows[len(windows)]


def _data(streams, seed=0, weights=None):
    weights = weights or {"web_crawl": 0.5, "math": 0.3, "code": 0.2}
    return PretrainData(streams, weights, seq_len=32, batch_size=8, seed=seed)


def test_batches_shapes_and_window_content(streams):
    data = _data(streams)
    assert data.source_names == sorted(STREAM_SOURCES)
    batch = next(data)
    assert batch["tokens"].shape == (8, 33) and batch["tokens"].dtype == np.int32
    assert batch["source"].shape == (8,) and batch["source"].dtype == np.int32
    # Each row is an aligned window of its source's stream.
    for row, src in zip(batch["tokens"], batch["source"]):
        stream = pipeline.load_tokens(streams[data.source_names[src]])
        windows = stream[: len(stream) // 33 * 33].reshape(-1, 33)
        assert (windows == row).all(axis=1).any()


def test_mixture_fractions_match_weights(streams):
    weights = {"web_crawl": 0.5, "math": 0.3, "code": 0.2}
    data = _data(streams, weights=weights)
    for _ in range(200):
        next(data)
    report = data.counter.report()
    assert report["total"] == 200 * 8 * 32
    for name, weight in weights.items():
        assert abs(report["fractions"][name] - weight) < 0.03, report


def test_same_seed_same_batches_and_exact_resume(streams):
    a, b = _data(streams, seed=3), _data(streams, seed=3)
    for _ in range(5):
        x, y = next(a), next(b)
        np.testing.assert_array_equal(x["tokens"], y["tokens"])
        np.testing.assert_array_equal(x["source"], y["source"])
    other = next(_data(streams, seed=4))
    assert not np.array_equal(other["tokens"], next(_data(streams, seed=3))["tokens"])

    state = a.get_state()
    expected = [next(a) for _ in range(6)]
    restored = _data(streams, seed=3)
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        np.testing.assert_array_equal(got["tokens"], want["tokens"])
        np.testing.assert_array_equal(got["source"], want["source"])
    assert restored.counter.counts() == a.counter.counts()  # drawn tokens survive a resume


def test_weight_validation(streams):
    with pytest.raises(ValueError, match="sum to 0.9"):
        _data(streams, weights={"web_crawl": 0.5, "math": 0.3, "code": 0.1})
    with pytest.raises(ValueError, match="non-negative"):
        _data(streams, weights={"web_crawl": 1.2, "math": -0.2})
    with pytest.raises(ValueError) as err:
        _data(streams, weights={"web_crawl": 0.5, "wiki": 0.5})
    assert "wiki" in str(err.value) and all(n in str(err.value) for n in STREAM_SOURCES)
    data = _data(streams, weights={"web_crawl": 0.6, "math": 0.4, "code": 0.0})
    assert data.source_names == ["math", "web_crawl"]
    for _ in range(10):
        assert set(np.unique(next(data)["source"])) <= {0, 1}


def test_token_counter_state():
    counter = TokenCounter(["a", "b"])
    counter.update({"tokens": np.zeros((4, 9), np.int32), "source": np.array([0, 1, 1, 1])})
    assert counter.counts() == {"a": 8, "b": 24}
    assert counter.fractions() == {"a": 0.25, "b": 0.75}
    other = TokenCounter(["a", "b"])
    other.set_state(counter.get_state())
    assert other.report() == counter.report()
