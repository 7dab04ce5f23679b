"""Document readers: every format round-trips, fingerprints follow content, errors name the file."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys

import pytest

from visual_priors.data import readers
from visual_priors.data.readers import CorpusError, open_reader

DOCS = ["first document\nwith two lines", "second: ünïcode ✓", "third " * 50]


def write_jsonl(path, docs, field="text", **extra):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for i, doc in enumerate(docs):
            f.write(json.dumps({field: doc, "id": i, **extra}, ensure_ascii=False) + "\n")


def write_array_record(path, records):
    from array_record.python import array_record_module

    writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
    for record in records:
        writer.write(record)
    writer.close()


def docs_of(spec, base_dir=None):
    return list(open_reader(spec, base_dir=base_dir).documents())


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_round_trip_with_globs_gzip_and_skipped_blanks(tmp_path):
    (tmp_path / "web").mkdir()
    write_jsonl(tmp_path / "web" / "b.jsonl", DOCS[1:])
    write_jsonl(tmp_path / "web" / "a.jsonl", [DOCS[0], "   \n ", ""])
    write_jsonl(tmp_path / "more.jsonl.gz", ["zipped document"])
    with open(tmp_path / "web" / "a.jsonl", "a") as f:
        f.write("\n")  # a blank line is not a record
    spec = {"format": "jsonl", "paths": ["web/*.jsonl", "more.jsonl.gz"], "text_field": "text"}
    reader = open_reader(spec, base_dir=tmp_path)
    assert reader.kind == "jsonl"
    assert list(reader.documents()) == DOCS + ["zipped document"]
    assert list(reader.documents()) == list(reader.documents())
    assert [p.name for p in reader.paths] == ["a.jsonl", "b.jsonl", "more.jsonl.gz"]
    assert "3 files" in reader.description
    # A single path string works as well as a list, and an absolute path ignores base_dir.
    assert docs_of({"format": "jsonl", "paths": str(tmp_path / "more.jsonl.gz")},
                   base_dir="/nonexistent") == ["zipped document"]


def test_jsonl_other_text_field_and_config_dict(tmp_path):
    import ml_collections

    write_jsonl(tmp_path / "x.jsonl", DOCS, field="body")
    spec = ml_collections.ConfigDict({"format": "jsonl", "paths": ["x.jsonl"],
                                      "text_field": "body"})
    assert docs_of(spec, base_dir=tmp_path) == DOCS


def test_zstd_needs_zstandard_or_round_trips(tmp_path):
    path = tmp_path / "x.jsonl.zst"
    try:
        import zstandard
    except ImportError:
        path.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(ImportError, match="zstandard"):
            docs_of({"format": "jsonl", "paths": [str(path)]})
        return
    data = "".join(json.dumps({"text": d}) + "\n" for d in DOCS).encode()
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    assert docs_of({"format": "jsonl", "paths": [str(path)]}) == DOCS


# --- Parquet -------------------------------------------------------------------------------


def test_parquet_round_trip_across_row_groups_and_batches(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"row {i} " + "x" * (i % 7) for i in range(2500)] + ["  "]
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    pq.write_table(table.slice(0, 1300), tmp_path / "part-0.parquet", row_group_size=500)
    pq.write_table(table.slice(1300), tmp_path / "part-1.parquet", row_group_size=500)
    reader = open_reader({"format": "parquet", "paths": ["part-*.parquet"]}, base_dir=tmp_path)
    assert list(reader.documents()) == texts[:-1]
    with pytest.raises(CorpusError, match=r"part-0.parquet: no column 'body'.*'id', 'text'"):
        docs_of({"format": "parquet", "paths": ["part-*.parquet"], "text_field": "body"},
                base_dir=tmp_path)
    with pytest.raises(CorpusError, match=r"column 'id' holds int64, not strings"):
        docs_of({"format": "parquet", "paths": ["part-0.parquet"], "text_field": "id"},
                base_dir=tmp_path)


def test_parquet_null_text_and_corrupt_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["ok", None]}), tmp_path / "nulls.parquet")
    with pytest.raises(CorpusError, match=r"nulls.parquet row 1: field 'text' is NoneType"):
        docs_of({"format": "parquet", "paths": [str(tmp_path / "nulls.parquet")]})
    good = (tmp_path / "nulls.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(good[: len(good) // 2])
    with pytest.raises(CorpusError, match=r"cut.parquet: not a readable Parquet file"):
        docs_of({"format": "parquet", "paths": [str(tmp_path / "cut.parquet")]})


# --- ArrayRecord ---------------------------------------------------------------------------


def test_array_record_raw_text_and_json_records(tmp_path):
    records = [DOCS[0].encode(), json.dumps({"text": DOCS[1], "id": 1}).encode(),
               DOCS[2].encode(), b"{not json, so raw text}", json.dumps(["a list"]).encode(),
               b"   "]
    write_array_record(tmp_path / "shard-00000.array_record", records[:3])
    write_array_record(tmp_path / "shard-00001.array_record", records[3:])
    reader = open_reader({"format": "array_record", "paths": ["shard-*.array_record"]},
                         base_dir=tmp_path)
    assert list(reader.documents()) == DOCS + ["{not json, so raw text}", '["a list"]']
    write_array_record(tmp_path / "bad.array_record", [json.dumps({"body": "x"}).encode()])
    with pytest.raises(CorpusError, match=r"bad.array_record record 0: record has no field "
                                          r"'text'; its keys are \['body'\]"):
        docs_of({"format": "array_record", "paths": [str(tmp_path / "bad.array_record")]})
    write_array_record(tmp_path / "latin.array_record", ["café".encode("latin-1")])
    with pytest.raises(CorpusError, match=r"latin.array_record record 0: record is not UTF-8"):
        docs_of({"format": "array_record", "paths": [str(tmp_path / "latin.array_record")]})


def test_array_record_corrupt_or_truncated_file(tmp_path):
    write_array_record(tmp_path / "good.array_record", [b"a document"])
    data = (tmp_path / "good.array_record").read_bytes()
    (tmp_path / "cut.array_record").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.array_record").write_bytes(b"junk" * 100)
    for name in ("cut.array_record", "junk.array_record"):
        with pytest.raises(CorpusError, match=rf"{name}: corrupt or truncated ArrayRecord"):
            docs_of({"format": "array_record", "paths": [str(tmp_path / name)]})


# --- TFDS ----------------------------------------------------------------------------------

TFDS_TRAIN = [f"train document {i}: {'é' * i}" for i in range(7)] + [""]


def _make_tfds_dataset(data_dir, file_format="array_record") -> str:
    import numpy as np
    import tensorflow_datasets as tfds

    class VpTinyText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "id": np.int64}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(TFDS_TRAIN),
                    "test": self._generate_examples(["held out"])}

        def _generate_examples(self, texts):
            for i, text in enumerate(texts):
                yield i, {"text": text, "id": i}

    builder = VpTinyText(data_dir=str(data_dir), file_format=file_format)
    builder.download_and_prepare()
    return os.fspath(builder.data_path)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return _make_tfds_dataset(tmp_path_factory.mktemp("tfds"))


def test_tfds_directory_round_trip_without_tensorflow(tfds_dir, tmp_path):
    reader = open_reader({"format": "tfds", "path": tfds_dir, "split": "train"})
    docs = list(reader.documents())
    assert sorted(docs) == sorted(TFDS_TRAIN[:-1])
    assert list(reader.documents()) == docs
    assert "train" in reader.description
    test_docs = docs_of({"format": "tfds", "path": tfds_dir, "split": "test"})
    assert test_docs == ["held out"]
    # A copy elsewhere, named relative to base_dir, is the same corpus.
    copy = tmp_path / "copy" / "1.0.0"
    shutil.copytree(tfds_dir, copy)
    moved = open_reader({"format": "tfds", "path": "copy/1.0.0"}, base_dir=tmp_path)
    assert list(moved.documents()) == docs
    assert moved.fingerprint == reader.fingerprint
    assert open_reader({"format": "tfds", "path": tfds_dir, "split": "test"}).fingerprint \
        != reader.fingerprint


def test_tfds_parquet_directory(tmp_path):
    path = _make_tfds_dataset(tmp_path, file_format="parquet")
    reader = open_reader({"format": "tfds", "path": path})
    assert reader.file_format == "parquet"
    assert sorted(reader.documents()) == sorted(TFDS_TRAIN[:-1])


def test_tfds_errors(tfds_dir, tmp_path):
    with pytest.raises(ValueError, match=r"no split 'validation'; its splits are \['test', "
                                         r"'train'\]"):
        open_reader({"format": "tfds", "path": tfds_dir, "split": "validation"})
    with pytest.raises(CorpusError, match=r"no feature 'body'; its features are \['id', 'text'\]"):
        open_reader({"format": "tfds", "path": tfds_dir, "text_field": "body"})
    with pytest.raises(FileNotFoundError, match="not a prepared TFDS dataset directory"):
        open_reader({"format": "tfds", "path": str(tmp_path)})
    # A replaced shard is named.
    copy = tmp_path / "broken"
    shutil.copytree(tfds_dir, copy)
    shard = next(p for p in copy.iterdir() if "train.array_record" in p.name)
    shard.write_bytes(b"not an array record" * 10)
    with pytest.raises(CorpusError, match=rf"{shard.name}: corrupt or truncated ArrayRecord"):
        docs_of({"format": "tfds", "path": str(copy)})


def test_tfds_tfrecord_dataset_needs_tensorflow(tfds_dir, tmp_path):
    try:
        import tensorflow  # noqa: F401
        pytest.skip("TensorFlow is installed, so TFRecord datasets are readable")
    except ImportError:
        pass
    copy = tmp_path / "tfrecord"
    shutil.copytree(tfds_dir, copy)
    info = json.loads((copy / "dataset_info.json").read_text())
    info["fileFormat"] = "tfrecord"
    (copy / "dataset_info.json").write_text(json.dumps(info))
    reader = open_reader({"format": "tfds", "path": str(copy)})
    with pytest.raises(ImportError, match="only TensorFlow can read"):
        list(reader.documents())


# --- seqio ---------------------------------------------------------------------------------


def test_seqio_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "seqio", None)  # makes `import seqio` fail
    with pytest.raises(ImportError, match=r"pip install -e \.\[seqio\]"):
        open_reader({"format": "seqio", "task": "anything"})


def test_seqio_task_round_trip():
    seqio = pytest.importorskip("seqio")
    import tensorflow as tf

    texts = ["seqio one", "seqio two", " "]
    name = "vp_readers_test_task"
    if name not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add(
            name,
            source=seqio.FunctionDataSource(
                lambda split, shuffle_files: tf.data.Dataset.from_tensor_slices(
                    {"text": texts}), splits=["train"]),
            output_features={})
    reader = open_reader({"format": "seqio", "task": name, "split": "train"})
    assert list(reader.documents()) == texts[:2]
    assert reader.fingerprint == open_reader({"format": "seqio", "task": name}).fingerprint


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprint_follows_content_not_location_or_time(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    write_jsonl(a / "x.jsonl", DOCS)
    write_jsonl(a / "y.jsonl", ["another"])
    spec = {"format": "jsonl", "paths": ["*.jsonl"]}
    fp = open_reader(spec, base_dir=a).fingerprint
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert open_reader(spec, base_dir=a).fingerprint == fp
    shutil.copytree(a, b)
    assert open_reader(spec, base_dir=b).fingerprint == fp
    os.utime(a / "x.jsonl", ns=(1, 1))  # touched, not changed
    assert open_reader(spec, base_dir=a).fingerprint == fp
    assert open_reader({**spec, "text_field": "id"}, base_dir=a).fingerprint != fp
    assert open_reader({"format": "jsonl", "paths": ["x.jsonl"]}, base_dir=a).fingerprint != fp
    write_jsonl(a / "x.jsonl", DOCS[:-1] + ["changed"])
    assert open_reader(spec, base_dir=a).fingerprint != fp
    # Renaming a file changes the order files are read in, so it changes the fingerprint too.
    os.rename(b / "y.jsonl", b / "0.jsonl")
    assert open_reader(spec, base_dir=b).fingerprint != fp


def test_file_hashes_are_cached_per_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, DOCS)
    first = readers.file_sha256(path)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    assert readers.file_sha256(path) == first
    assert not opened


# --- errors --------------------------------------------------------------------------------


def test_unknown_format_and_bad_spec_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown corpus format 'csv'; valid formats: jsonl, "
                                         r"parquet, array_record, tfds, seqio"):
        open_reader({"format": "csv", "paths": ["x.csv"]})
    with pytest.raises(ValueError, match=r"unknown keys \['text_fields'\]"):
        open_reader({"format": "jsonl", "paths": ["x"], "text_fields": "text"})
    with pytest.raises(ValueError, match=r"jsonl spec lacks 'paths'"):
        open_reader({"format": "jsonl"})


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file matches .*nothing-\*\.jsonl"):
        open_reader({"format": "jsonl", "paths": ["nothing-*.jsonl"]}, base_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"absent.jsonl does not exist"):
        open_reader({"format": "jsonl", "paths": ["absent.jsonl"]}, base_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"is a directory"):
        open_reader({"format": "jsonl", "paths": [str(tmp_path)]})


def test_jsonl_content_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": "broken\n')
    with pytest.raises(CorpusError, match=rf"{path}:3: not valid JSON"):
        docs_of({"format": "jsonl", "paths": [str(path)]})
    path.write_text('{"text": "fine"}\n{"body": "x", "id": 2}\n')
    with pytest.raises(CorpusError, match=rf"{path}:2: record has no field 'text'; its keys "
                                          r"are \['body', 'id'\]"):
        docs_of({"format": "jsonl", "paths": [str(path)]})
    path.write_text('{"text": ["not", "a", "string"]}\n')
    with pytest.raises(CorpusError, match=rf"{path}:1: field 'text' is list .*not a string"):
        docs_of({"format": "jsonl", "paths": [str(path)]})
    path.write_text('"a bare string"\n')
    with pytest.raises(CorpusError, match=rf"{path}:1: expected a JSON object holding 'text'"):
        docs_of({"format": "jsonl", "paths": [str(path)]})
    path.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match=rf"{path}:1: line is not UTF-8"):
        docs_of({"format": "jsonl", "paths": [str(path)]})


def test_empty_source(tmp_path):
    write_jsonl(tmp_path / "blank.jsonl", ["", "  \n\t"])
    reader = open_reader({"format": "jsonl", "paths": ["blank.jsonl"]}, base_dir=tmp_path)
    with pytest.raises(CorpusError, match=r"empty source: jsonl: blank.jsonl"):
        list(reader.documents())


def test_truncated_gzip_names_the_file(tmp_path):
    good = tmp_path / "good.jsonl.gz"
    write_jsonl(good, DOCS * 200)
    data = good.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=rf"{cut}: corrupt or truncated compressed file"):
        docs_of({"format": "jsonl", "paths": [str(cut)]})
    notgz = tmp_path / "plain.jsonl.gz"
    notgz.write_text('{"text": "not compressed"}\n')
    with pytest.raises(CorpusError, match=rf"{notgz}: corrupt or truncated compressed file"):
        docs_of({"format": "jsonl", "paths": [str(notgz)]})
