"""Reads PyTorch ``.pt``/``.pth`` checkpoints into numpy arrays, without torch.

Since torch 1.6, ``torch.save`` writes a zip archive: ``<name>/data.pkl`` is a pickle of the saved
object in which every tensor is a call to ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)`` and every storage a persistent id ``("storage", <dtype>Storage, key,
device, numel)`` whose bytes are the archive member ``<name>/data/<key>``.

The pickle is read by a restricted unpickler: the tensor-rebuild functions, the storage types
and ``collections.OrderedDict`` map to functions of this module, and nothing is ever imported
or called on a pickle's say. Any other class or function it names (a training run's
``argparse.Namespace``, a pickled ``nn.Module``) becomes an inert ``Opaque`` record, so that a
checkpoint holding such objects next to its state dict still reads; asking for tensors that
sit inside one is an error naming the class.

    tensors = torch_pickle.load_state_dict("mobilenet_v2-b0353104.pth")   # name -> np.ndarray
    tensors = torch_pickle.load_state_dict("ckpt.pth.tar", key="state_dict_ema")
    obj = torch_pickle.read("ckpt.pth")             # the whole saved object, tensors as arrays

Legacy (non-zip) files from ``torch.save(..., _use_new_zipfile_serialization=False)`` or
torch < 1.6 are refused with a message saying how to re-save them.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import ml_dtypes
import numpy as np

from visual_priors.errors import BadFile

# Storage classes as torch pickles them, and the dtypes of their elements.
_STORAGES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,  # raw bytes; the tensor's dtype comes from _rebuild_tensor_v3
}
# torch dtypes by the attribute name they pickle as (``torch.float32`` is ``torch float32``).
_DTYPES = {
    "float64": np.float64, "double": np.float64, "float32": np.float32, "float": np.float32,
    "float16": np.float16, "half": np.float16, "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64, "long": np.int64, "int32": np.int32, "int": np.int32,
    "int16": np.int16, "short": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}
# Keys under which training scripts commonly nest the model's state dict, in priority order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")

# A legacy torch file starts with a pickled magic number: PROTO 2, LONG1 of 10 bytes.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class TorchPickleError(BadFile):
    """A file that is not a torch checkpoint this reader can decode, or a missing entry."""


class Opaque:
    """What an unpickled object of a class this reader does not import becomes: the class's
    qualified name plus the arguments and state the pickle gave it, never interpreted."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<{self.qualname} (not decoded)>"


def _opaque_class(module: str, name: str) -> type:
    return type(name, (Opaque,), {"qualname": f"{module}.{name}"})


class _Storage:
    """One storage's bytes, read once and shared by every tensor that views them."""

    def __init__(self, data: bytes, dtype, key: str):
        self.data = data
        self.dtype = np.dtype(dtype)
        self.key = key

    def view(self, dtype, offset: int, size: tuple, stride: tuple) -> np.ndarray:
        dtype = np.dtype(dtype)
        flat = np.frombuffer(self.data, dtype=np.uint8)
        itemsize = dtype.itemsize
        numel = len(self.data) // itemsize
        # Bounds first: as_strided would read outside the buffer without complaint.
        last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
        if offset < 0 or min(stride, default=0) < 0 or last >= numel:
            raise TorchPickleError(
                f"a tensor of size {tuple(size)}, stride {tuple(stride)} at offset {offset} does not "
                f"fit storage {self.key} of {numel} {dtype.name} elements")
        elems = flat[: numel * itemsize].view(dtype)
        view = np.lib.stride_tricks.as_strided(
            elems[offset:] if numel else elems, shape=tuple(size),
            strides=tuple(s * itemsize for s in stride))
        # A copy: the result owns contiguous memory and no two returned arrays alias.
        return np.array(view, order="C", copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return storage.view(storage.dtype, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None):
    return storage.view(dtype, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data  # an nn.Parameter is its tensor here


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensors carrying Python attributes (subclasses, or tensors with a __dict__) wrap the
    # plain rebuild in this; the attributes are dropped.
    return func(*args)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    **{("torch", name): dtype for name, dtype in _STORAGES.items()},
    **{("torch", name): dtype for name, dtype in _DTYPES.items()},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str, path: Path):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._byteorder = byteorder
        self._path = path
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        return found if found is not None else _opaque_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise TorchPickleError(f"{self._path}: unsupported persistent id {pid!r} (only tensor storages are)")
        _, dtype, key, _location, numel = pid
        if isinstance(dtype, type) and issubclass(dtype, Opaque):
            raise TorchPickleError(f"{self._path}: storage {key} has the unsupported type {dtype.qualname}")
        if key not in self._storages:  # a storage shared by several tensors is read once
            self._storages[key] = self._read_storage(str(key), np.dtype(dtype), numel)
        return self._storages[key]

    def _read_storage(self, key: str, dtype: np.dtype, numel: int) -> _Storage:
        member = f"{self._prefix}data/{key}"
        try:
            data = self._archive.read(member)
        except KeyError:
            raise TorchPickleError(f"{self._path}: storage {member} is missing from the archive") from None
        if len(data) < numel * dtype.itemsize:
            raise TorchPickleError(f"{self._path}: storage {member} holds {len(data)} bytes, "
                                   f"{numel} {dtype.name} elements need {numel * dtype.itemsize}")
        if self._byteorder == "big" and dtype.itemsize > 1:
            data = np.frombuffer(data, dtype=f">u{dtype.itemsize}").astype(f"<u{dtype.itemsize}").tobytes()
        return _Storage(data, dtype, member)


def _open_archive(path: Path) -> zipfile.ZipFile:
    with path.open("rb") as f:
        head = f.read(len(_LEGACY_MAGIC))
    if head.startswith(_LEGACY_MAGIC):
        raise TorchPickleError(
            f"{path} is in torch's legacy (non-zip) serialization format, which this reader does not "
            "decode; re-save it with torch >= 1.6's default zip format: "
            "torch.save(torch.load(old_path), new_path)")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        kind = "truncated or corrupt" if head.startswith(b"PK") else "not a torch checkpoint"
        raise TorchPickleError(f"{path}: {kind} (not a readable torch zip archive: {e})") from None


def _data_pickle(archive: zipfile.ZipFile, path: Path) -> str:
    """The archive's top-level ``<name>/data.pkl``; its ``<name>/`` prefixes every record."""
    names = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
    if len(names) != 1:
        raise TorchPickleError(f"{path} is a zip archive but not a torch checkpoint "
                               f"(expected one <name>/data.pkl, found {names or 'none'})")
    return names[0]


def read(path: str | Path):
    """The object that ``torch.save`` stored in ``path``, with every tensor as a numpy array
    (a copy, C-contiguous, in the tensor's dtype; bfloat16 through ml_dtypes)."""
    path = Path(path)
    with _open_archive(path) as archive:
        pkl = _data_pickle(archive, path)
        prefix = pkl[: -len("data.pkl")]
        try:
            byteorder = archive.read(prefix + "byteorder").decode().strip()
        except KeyError:  # written before torch recorded it: always little-endian
            byteorder = "little"
        try:
            with archive.open(pkl) as f:
                return _Unpickler(f, archive, prefix, byteorder, path).load()
        except TorchPickleError:
            raise
        except Exception as e:  # a damaged or hostile pickle fails in many ways; name the file
            raise TorchPickleError(f"{path}: cannot decode {pkl} ({type(e).__name__}: {e})") from e


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"tensor {value.dtype.name}{list(value.shape)}"
    if isinstance(value, Opaque):
        return value.qualname
    return type(value).__name__


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, np.ndarray) for v in obj.values())


def find_state_dict(obj, key: str | None = None, *, where: str = "the checkpoint") -> dict[str, np.ndarray]:
    """The name -> array mapping inside an object returned by ``read``.

    ``key`` addresses it explicitly ("state_dict", or a path "a/b" through nested dicts).
    Without it, a mapping of tensors is taken as is, and otherwise the first of
    ``STATE_DICT_KEYS`` present is followed, repeatedly.
    """
    if key is not None:
        for part in key.split("/"):
            if not isinstance(obj, Mapping) or part not in obj:
                have = ", ".join(map(str, obj)) if isinstance(obj, Mapping) else _describe(obj)
                raise TorchPickleError(f"{where} has no entry {key!r} (at {part!r}; found: {have})")
            obj = obj[part]
    else:
        while isinstance(obj, Mapping) and not _is_state_dict(obj):
            nested = next((k for k in STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
            if nested is None:
                break
            obj = obj[nested]
    if isinstance(obj, Opaque):
        raise TorchPickleError(
            f"{where} holds a pickled {obj.qualname} object, which needs that class's code to "
            "unpickle; save its tensors instead: torch.save(model.state_dict(), path)")
    if not isinstance(obj, Mapping):
        raise TorchPickleError(f"{where} holds a {_describe(obj)}, not a state dict of named tensors")
    bad = {k: _describe(v) for k, v in obj.items() if not isinstance(v, np.ndarray)}
    if bad:
        shown = ", ".join(f"{k} ({v})" for k, v in list(bad.items())[:8])
        hint = "" if key is not None else f"; pass key= to pick one of its entries ({', '.join(map(str, obj))})"
        raise TorchPickleError(f"{where} is not a flat state dict: entries that are not tensors: {shown}{hint}")
    return {str(k): v for k, v in obj.items()}


def load_state_dict(path: str | Path, key: str | None = None) -> dict[str, np.ndarray]:
    """Name -> numpy array of the state dict saved in ``path`` (see ``find_state_dict`` for
    ``key`` and the unwrapping of ``{"state_dict": ...}``-style nesting)."""
    return find_state_dict(read(path), key, where=str(path))
