"""Document readers: the texts of a real corpus on disk, in a fixed order, from a plain spec.

A spec is a dict (it comes from JSON or ml_collections configs) naming a format and where the
corpus is; `open_reader` turns it into a `DocumentReader`, whose `documents()` yields every
non-blank text in the same order on every call and whose `fingerprint` changes exactly when
that text could change. The fingerprint hashes file contents, not paths or times, so a corpus
copied elsewhere keeps its cache keys and a touched file does not invalidate them.

Formats: JSONL (optionally .gz, or .zst with zstandard installed), Parquet, ArrayRecord (each
record raw UTF-8 text or a JSON object), a prepared TFDS dataset directory (read without
TensorFlow when stored as ArrayRecord or Parquet) and, with the `seqio` extra, a seqio task.
Problems with the data are `CorpusError`s that name the file, and where they can the line or
record, so a bad shard of a large corpus is found without bisecting it.
"""

from __future__ import annotations

import abc
import functools
import glob
import gzip
import hashlib
import importlib
import io
import json
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from visual_priors.errors import BadFile, BadValue, MissingFile

FORMATS = ("jsonl", "parquet", "array_record", "tfds", "seqio")
# Bumped when a reader's way of turning bytes into documents changes, so fingerprints change.
_READER_VERSION = 1
_HASH_BLOCK = 1 << 20
# Records and rows read per call; a batch is small next to any corpus, large next to a call.
_BATCH = 1024
# sha256 of file bytes per (real path, size, mtime_ns): re-reading a large corpus is not free.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


class CorpusError(BadFile):
    """The corpus's data is unusable: bad JSON, a missing or non-string text, a corrupt file."""


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks; cached for as long as its size and
    modification time stay the same."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    digest = _FILE_HASHES.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            while block := f.read(_HASH_BLOCK):
                h.update(block)
        digest = _FILE_HASHES[key] = h.hexdigest()
    return digest


def _files_digest(params: Mapping[str, Any], files: Sequence[Path], root: Path) -> str:
    """16 hex chars over the reader's parameters and (relative name, size, sha256) per file."""
    h = hashlib.sha256(json.dumps({**params, "reader_version": _READER_VERSION},
                                  sort_keys=True).encode())
    for path in files:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        h.update(f"\x00{rel}\x00{os.path.getsize(path)}\x00{file_sha256(path)}".encode())
    return h.hexdigest()[:16]


class DocumentReader(abc.ABC):
    """The documents of one corpus, in a deterministic order.

    `documents()` skips empty and whitespace-only texts, and fails with "empty source" when
    nothing is left, since a mixture with an empty component could never be filled.
    """

    kind: str = ""

    def __init__(self, text_field: str = "text", description: str | None = None):
        if not isinstance(text_field, str) or not text_field:
            raise BadValue(f"text_field must be a non-empty string, got {text_field!r}")
        self.text_field = text_field
        self._description = description

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """16 hex chars identifying the text this reader yields."""

    @property
    def description(self) -> str:
        return self._description or self._describe()

    @abc.abstractmethod
    def _describe(self) -> str:
        """One line saying what is read."""

    @abc.abstractmethod
    def _texts(self) -> Iterator[tuple[str, Any]]:
        """(where, value of text_field) per record; `where` names the file and line/record."""

    def documents(self) -> Iterator[str]:
        count = 0
        for where, text in self._texts():
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise CorpusError(f"{where}: field {self.text_field!r} is not UTF-8 "
                                      f"text ({err})") from None
            if not isinstance(text, str):
                raise CorpusError(f"{where}: field {self.text_field!r} is "
                                  f"{type(text).__name__} {_short(text)}, not a string")
            if text.strip():
                count += 1
                yield text
        if count == 0:
            raise CorpusError(f"empty source: {self.description} has no non-blank documents")

    def __iter__(self) -> Iterator[str]:
        return self.documents()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _record_text(record: Any, field: str, where: str) -> Any:
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object holding {field!r}, "
                          f"got {type(record).__name__} {_short(record)}")
    if field not in record:
        raise CorpusError(f"{where}: record has no field {field!r}; "
                          f"its keys are {sorted(record)}")
    return record[field]


# --- files ---------------------------------------------------------------------------------


def resolve_paths(patterns: str | Sequence[str], base_dir: str | Path | None = None) -> list[Path]:
    """Files named by paths or globs (`**` recursive), each glob's matches sorted, in the order
    given, duplicates dropped. Relative patterns resolve against base_dir (else the cwd)."""
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns:
        raise BadValue("a file reader needs at least one path in 'paths'")
    files: list[Path] = []
    seen: set[str] = set()
    for pattern in patterns:
        pattern = os.path.expanduser(os.fspath(pattern))
        if base_dir is not None and not os.path.isabs(pattern):
            pattern = os.path.join(os.fspath(base_dir), pattern)
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not matches:
                raise MissingFile(f"no file matches {pattern!r}")
        elif os.path.isdir(pattern):
            raise MissingFile(f"{pattern} is a directory; name its files, e.g. with a "
                                    f"glob like {os.path.join(pattern, '*.jsonl')!r}")
        elif not os.path.isfile(pattern):
            raise MissingFile(f"corpus file {pattern} does not exist")
        else:
            matches = [pattern]
        for match in matches:
            real = os.path.realpath(match)
            if real not in seen:
                seen.add(real)
                files.append(Path(os.path.abspath(match)))
    return files


class _FileReader(DocumentReader):
    """A reader over a list of files, read one after another."""

    def __init__(self, paths: str | Sequence[str], text_field: str = "text",
                 base_dir: str | Path | None = None, description: str | None = None):
        super().__init__(text_field, description)
        self.paths = resolve_paths(paths, base_dir)
        self.root = Path(os.path.commonpath([p.parent for p in self.paths]))
        # Found when the corpus is named (planning, `data sources`), not steps later mid-study.
        for path in self.paths:
            if not os.access(path, os.R_OK):
                raise CorpusError("corpus file cannot be read (no read permission)", path)
        if all(p.stat().st_size == 0 for p in self.paths):
            raise CorpusError("empty source: its corpus files are empty",
                              self.paths[0] if len(self.paths) == 1 else self.root)

    @property
    def fingerprint(self) -> str:
        return _files_digest({"kind": self.kind, "text_field": self.text_field},
                             self.paths, self.root)

    def _describe(self) -> str:
        n = len(self.paths)
        what = self.paths[0].name if n == 1 else f"{n} files"
        return f"{self.kind}: {what} under {self.root} (text_field={self.text_field!r})"

    def _texts(self) -> Iterator[tuple[str, Any]]:
        for path in self.paths:
            yield from self._file_texts(path)

    @abc.abstractmethod
    def _file_texts(self, path: Path) -> Iterator[tuple[str, Any]]:
        """(where, value of text_field) per record of one file."""


def _open_bytes(path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise ImportError(f"{path} is zstd-compressed; reading it needs the zstandard "
                              "package: pip install zstandard") from None
        raw = open(path, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(path, "rb")


# What a truncated or corrupt compressed file raises while it is read.
_DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (EOFError, gzip.BadGzipFile, zlib.error)
try:
    import zstandard as _zstandard

    _DECOMPRESS_ERRORS += (_zstandard.ZstdError,)
except ImportError:
    pass


class JsonlReader(_FileReader):
    """One JSON object per line; blank lines are skipped."""

    kind = "jsonl"

    def _file_texts(self, path: Path) -> Iterator[tuple[str, Any]]:
        lineno = 0
        try:
            with _open_bytes(path) as f:
                for lineno, raw in enumerate(f, 1):
                    where = f"{path}:{lineno}"
                    try:
                        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                    except UnicodeDecodeError as err:
                        raise CorpusError(f"{where}: line is not UTF-8 ({err})") from None
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise CorpusError(f"{where}: not valid JSON ({err.msg} at column "
                                          f"{err.colno}): {_short(line.strip())}") from None
                    yield where, _record_text(record, self.text_field, where)
        except _DECOMPRESS_ERRORS as err:
            raise CorpusError(f"{path}: corrupt or truncated compressed file after line "
                              f"{lineno} ({type(err).__name__}: {err})") from None


class ParquetReader(_FileReader):
    """One string column of Parquet files, read a batch of rows at a time (never a whole file)."""

    kind = "parquet"

    def _file_texts(self, path: Path) -> Iterator[tuple[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as err:
            raise CorpusError(f"{path}: not a readable Parquet file ({err})") from None
        names = pf.schema_arrow.names
        if self.text_field not in names:
            raise CorpusError(f"{path}: no column {self.text_field!r}; its columns are "
                              f"{sorted(names)}")
        column_type = pf.schema_arrow.field(self.text_field).type
        if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)
                or getattr(pa.types, "is_string_view", lambda _: False)(column_type)):
            raise CorpusError(f"{path}: column {self.text_field!r} holds {column_type}, "
                              "not strings")
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=_BATCH, columns=[self.text_field]):
                for value in batch.column(0).to_pylist():
                    yield f"{path} row {row}", value
                    row += 1
        except (pa.ArrowException, OSError) as err:
            raise CorpusError(f"{path}: corrupt Parquet data near row {row} ({err})") from None


def _decode_record(data: bytes, field: str, where: str) -> Any:
    """A record that parses as a JSON object holds the text in `field`; any other record is
    the text itself."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{where}: record is not UTF-8 text ({err})") from None
    if text.lstrip().startswith("{"):
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(record, dict):
            return _record_text(record, field, where)
    return text


def _array_record_reader(path: Path):
    from array_record.python import array_record_module

    try:
        reader = array_record_module.ArrayRecordReader(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        raise CorpusError(f"{path}: not a readable ArrayRecord file ({err})") from None
    if not reader.ok():
        try:
            reader.close()
        except RuntimeError:  # closing a reader that failed to open reports the failure again
            pass
        raise CorpusError(f"{path}: corrupt or truncated ArrayRecord file (its footer cannot be "
                          "read)")
    return reader


class ArrayRecordReader(_FileReader):
    """ArrayRecord files whose records are UTF-8 text or JSON objects (decided per record)."""

    kind = "array_record"

    def _file_texts(self, path: Path) -> Iterator[tuple[str, Any]]:
        reader = _array_record_reader(path)
        try:
            n = reader.num_records()
            for start in range(0, n, _BATCH):
                end = min(n, start + _BATCH)
                try:
                    records = reader.read(start, end)
                except (RuntimeError, ValueError, OSError) as err:
                    raise CorpusError(f"{path}: corrupt records {start}..{end - 1} "
                                      f"({err})") from None
                for i, data in enumerate(records, start):
                    where = f"{path} record {i}"
                    yield where, _decode_record(data, self.text_field, where)
        finally:
            reader.close()


# --- TFDS ----------------------------------------------------------------------------------


class TfdsReader(DocumentReader):
    """A split of a prepared TFDS dataset directory (the one holding dataset_info.json).

    ArrayRecord and Parquet datasets are read through `as_data_source`, which needs no
    TensorFlow; TFRecord datasets need TensorFlow, and say so when it is missing.
    """

    kind = "tfds"

    def __init__(self, path: str | Path, split: str = "train", text_field: str = "text",
                 base_dir: str | Path | None = None, description: str | None = None):
        super().__init__(text_field, description)
        path = Path(os.path.expanduser(os.fspath(path)))
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        self.path = path.absolute()
        if not (self.path / "dataset_info.json").is_file():
            raise FileNotFoundError(f"{self.path} is not a prepared TFDS dataset directory "
                                    "(it has no dataset_info.json); name the versioned "
                                    "directory, e.g. <data_dir>/<name>/1.0.0")
        import tensorflow_datasets as tfds

        try:
            self.builder = tfds.builder_from_directory(os.fspath(self.path))
        except Exception as err:  # tfds raises many kinds for a damaged directory
            raise CorpusError(f"{self.path}: cannot load the TFDS dataset "
                              f"({type(err).__name__}: {err})") from None
        splits = self.builder.info.splits
        if split not in splits:
            raise BadValue(f"{self.path}: no split {split!r}; its splits are {sorted(splits)}")
        self.split = split
        features = self.builder.info.features
        keys = list(features.keys()) if hasattr(features, "keys") else []
        if text_field not in keys:
            raise CorpusError(f"{self.path}: no feature {text_field!r}; its features are "
                              f"{sorted(keys)}")
        self.file_format = str(getattr(self.builder.info.file_format, "value",
                                       self.builder.info.file_format))

    def _data_files(self) -> list[Path]:
        return [Path(os.fspath(p)) for p in self.builder.info.splits[self.split].filepaths]

    @property
    def fingerprint(self) -> str:
        meta = [self.path / name for name in ("dataset_info.json", "features.json")
                if (self.path / name).is_file()]
        return _files_digest({"kind": self.kind, "split": self.split,
                              "text_field": self.text_field},
                             meta + self._data_files(), self.path)

    def _describe(self) -> str:
        info = self.builder.info
        return (f"tfds: {info.name} {info.version} split {self.split!r} at {self.path} "
                f"(text_field={self.text_field!r})")

    def _texts(self) -> Iterator[tuple[str, Any]]:
        if self.file_format == "array_record":
            yield from self._array_record_texts()
        elif self.file_format == "parquet":
            yield from self._data_source_texts()
        else:
            yield from self._tf_texts()

    def _array_record_texts(self) -> Iterator[tuple[str, Any]]:
        # Opening each shard first turns a corrupt one into an error naming it, instead of an
        # opaque failure deep inside the data source.
        shards = self.builder.info.splits[self.split].shard_lengths
        for path, expected in zip(self._data_files(), shards):
            reader = _array_record_reader(path)
            n = reader.num_records()
            reader.close()
            if n != expected:
                raise CorpusError(f"{path}: {n} records, but dataset_info.json says {expected} "
                                  "(a truncated or replaced shard)")
        yield from self._data_source_texts()

    def _data_source_texts(self) -> Iterator[tuple[str, Any]]:
        where = f"{self.path} split {self.split!r}"
        try:
            source = self.builder.as_data_source(split=self.split)
        except Exception as err:
            raise CorpusError(f"{where}: cannot open the data files "
                              f"({type(err).__name__}: {err})") from None
        n = len(source)
        for start in range(0, n, _BATCH):
            indices = list(range(start, min(n, start + _BATCH)))
            try:
                examples = (source.__getitems__(indices) if hasattr(source, "__getitems__")
                            else [source[i] for i in indices])
            except Exception as err:
                raise CorpusError(f"{where}: cannot read examples {indices[0]}..{indices[-1]} "
                                  f"({type(err).__name__}: {err})") from None
            for i, example in zip(indices, examples):
                yield f"{where} example {i}", example[self.text_field]

    def _tf_texts(self) -> Iterator[tuple[str, Any]]:
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise ImportError(
                f"{self.path} is stored as {self.file_format}, which only TensorFlow can read: "
                "pip install tensorflow, or convert it to ArrayRecord with "
                f"`tfds convert_format --dataset_version_dir {self.path} "
                "--out_file_format array_record --out_dir <dir>`") from None
        import tensorflow_datasets as tfds

        ds = self.builder.as_dataset(split=self.split, shuffle_files=False)
        for i, example in enumerate(tfds.as_numpy(ds)):
            yield f"{self.path} split {self.split!r} example {i}", example[self.text_field]


# --- seqio ---------------------------------------------------------------------------------


def _stable_repr(obj: Any, depth: int = 4) -> str:
    """A description of a seqio source or preprocessor that is the same in every process:
    functions by qualified name, objects by class and (a few levels of) attributes, never by
    memory address."""
    if obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return repr(obj)
    if depth <= 0:
        return f"{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, functools.partial):
        return (f"partial({_stable_repr(obj.func, depth - 1)}, {_stable_repr(obj.args, depth - 1)}"
                f", {_stable_repr(obj.keywords, depth - 1)})")
    if isinstance(obj, Mapping):
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{k!s}: {_stable_repr(v, depth - 1)}" for k, v in items) + "}"
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return "[" + ", ".join(_stable_repr(x, depth - 1) for x in items) + "]"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if hasattr(obj, "__dict__"):
        return name + _stable_repr(vars(obj), depth - 1)
    return name


class SeqioReader(DocumentReader):
    """A registered seqio task's (or mixture's) split, unshuffled, one epoch; `module` is
    imported first so that it can register the task. For a tokenized task, read
    "<feature>_pretokenized". The fingerprint covers the task's definition (sources and
    preprocessors), not the data files behind its sources."""

    kind = "seqio"

    def __init__(self, task: str, split: str = "train", text_field: str = "text",
                 module: str | None = None, description: str | None = None):
        super().__init__(text_field, description)
        try:
            import seqio
        except ImportError:
            raise ImportError("reading a seqio task needs the seqio extra: "
                              "pip install -e .[seqio]") from None
        if module:
            importlib.import_module(module)
        try:
            self.task = seqio.get_mixture_or_task(task)
        except (ValueError, KeyError) as err:
            hint = f" (after importing {module})" if module else "; set 'module' to register it"
            raise BadValue(f"no seqio task or mixture {task!r}{hint}: {err}") from None
        self.task_name, self.split, self.module = task, split, module

    @property
    def fingerprint(self) -> str:
        parts = [self.kind, self.task_name, self.split, self.text_field, str(_READER_VERSION)]
        tasks = getattr(self.task, "tasks", None) or [self.task]  # a mixture's tasks
        for task in tasks:
            parts.append(getattr(task, "name", ""))
            parts.append(_stable_repr(getattr(task, "source", None)))
            parts.append(_stable_repr(list(getattr(task, "preprocessors", None) or ())))
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

    def _describe(self) -> str:
        return (f"seqio: task {self.task_name!r} split {self.split!r} "
                f"(text_field={self.text_field!r})")

    def _texts(self) -> Iterator[tuple[str, Any]]:
        import tensorflow_datasets as tfds

        ds = self.task.get_dataset(sequence_length=None, split=self.split, shuffle=False,
                                   num_epochs=1)
        for i, example in enumerate(tfds.as_numpy(ds)):
            where = f"seqio task {self.task_name!r} split {self.split!r} example {i}"
            yield where, _record_text(dict(example), self.text_field, where)


# --- specs ---------------------------------------------------------------------------------

_SPEC_KEYS = {
    "jsonl": ({"paths"}, {"text_field", "description"}),
    "parquet": ({"paths"}, {"text_field", "description"}),
    "array_record": ({"paths"}, {"text_field", "description"}),
    "tfds": ({"path"}, {"split", "text_field", "description"}),
    "seqio": ({"task"}, {"split", "text_field", "module", "description"}),
}
_FILE_READERS = {"jsonl": JsonlReader, "parquet": ParquetReader,
                 "array_record": ArrayRecordReader}


def open_reader(spec: Mapping[str, Any], base_dir: str | Path | None = None) -> DocumentReader:
    """The reader a spec describes, e.g. `{"format": "jsonl", "paths": ["web/*.jsonl.gz"],
    "text_field": "text"}`; relative paths resolve against base_dir.

    Keys per format: jsonl / parquet / array_record take `paths` (a path or glob, or a list of
    them); tfds takes `path` (the prepared dataset's versioned directory) and `split`; seqio
    takes `task`, `split` and an optional `module` to import. All take `text_field` (default
    "text") and an optional one-line `description`. Unknown keys are errors, so a misspelt
    key does not silently fall back to a default.
    """
    if hasattr(spec, "to_dict"):  # ml_collections.ConfigDict
        spec = spec.to_dict()
    if not isinstance(spec, Mapping):
        raise TypeError(f"a reader spec is a dict, got {type(spec).__name__}")
    spec = dict(spec)
    fmt = spec.pop("format", None)
    if fmt not in _SPEC_KEYS:
        raise BadValue(f"unknown corpus format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    required, optional = _SPEC_KEYS[fmt]
    missing = sorted(required - set(spec))
    if missing:
        raise BadValue(f"{fmt} spec lacks {', '.join(map(repr, missing))}; it takes "
                       f"{', '.join(sorted(required | optional))}")
    unknown = sorted(set(spec) - required - optional)
    if unknown:
        raise BadValue(f"{fmt} spec has unknown keys {unknown}; valid keys: "
                       f"{', '.join(sorted(required | optional | {'format'}))}")
    if fmt in _FILE_READERS:
        paths = spec.pop("paths")
        if not isinstance(paths, (str, os.PathLike)):
            paths = list(paths)
        return _FILE_READERS[fmt](paths, base_dir=base_dir, **spec)
    if fmt == "tfds":
        return TfdsReader(spec.pop("path"), base_dir=base_dir, **spec)
    return SeqioReader(spec.pop("task"), **spec)
