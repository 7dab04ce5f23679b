"""What a kind of step is, in one place, and the content-hashed step that carries it.

Each stage (tokenizer, shards, labels, pretrain, encoder, features, align, sft, evaluate, ...)
is a frozen dataclass of the fields that decide its result, with its kind, its version, how it
runs, how it describes itself, what it costs and whether it trains together with others. A
`Step` is one such unit with its inputs: its identity hashes the unit's fields, its version and
its inputs' identities, so two runs (or two studies) that need the same tokenizer, shard,
encoder or pre-trained LLM share one step, and changing any field upstream changes every
identity downstream. The planner, the executor and the packer ask the unit; nothing switches on
a kind's name. Adding a stage is a unit in the module of its runner plus the line of
`spec.expand` that builds it.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import ml_collections

HASH_LEN = 12


@dataclasses.dataclass(frozen=True)
class Stage(abc.ABC):
    """One kind of step: subclasses are frozen dataclasses whose fields are the step's identity.

    A field whose default is None and whose value is None is left out of the identity, so a
    setting that is off identifies the step as it was before the setting existed."""

    kind: ClassVar[str]
    # Bumped when the implementation changes what the stage writes, so old outputs are not reused.
    version: ClassVar[int] = 1

    def identity(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = value
        return out

    @abc.abstractmethod
    def run(self, step: Step, out: Path, locate) -> dict:
        """Make the step's output in `out` (its inputs' outputs found by `locate`); the result
        the executor stores as result.json. Every stage says how it runs: a unit without `run`
        cannot be built."""

    def describe(self, step: Step, owner: str) -> str:
        """A few words after the step's name in progress output; `owner` is the first run that
        needs it."""
        return ""

    def flops(self, step: Step) -> float:
        """Training FLOPs (0 for a stage that trains nothing)."""
        return 0.0

    def pack_key(self, step: Step) -> tuple | None:
        """Steps with equal keys can be trained together in one program; None: alone."""
        return None


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    unit: Stage
    inputs: tuple[Step, ...] = ()
    # How to run it, not what it makes (worker processes, mesh, logging and checkpoint
    # cadence): the runner honours them, but they are not part of the identity.
    options: dict = dataclasses.field(default_factory=dict)
    # Steps planned wherever this one is, without being its inputs: they neither enter its
    # identity nor wait for it (a run's evaluation brings along its LLM's alignment step).
    companions: tuple[Step, ...] = ()

    @property
    def kind(self) -> str:
        return self.unit.kind

    @cached_property
    def fields(self) -> dict:
        """The unit's identity as plain JSON values (what result.json's spec records)."""
        return plain(self.unit.identity())

    @cached_property
    def hash(self) -> str:
        payload = {"kind": self.kind, "version": self.unit.version, "fields": self.fields,
                   "inputs": sorted(f"{s.kind}:{s.hash}" for s in self.inputs)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:HASH_LEN]

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.hash}"

    def input(self, kind: str) -> Step:
        found = [s for s in self.inputs if s.kind == kind]
        if len(found) != 1:
            raise KeyError(f"step {self.name} has {len(found)} inputs of kind {kind!r}")
        return found[0]

    def inputs_of(self, kind: str) -> list[Step]:
        return [s for s in self.inputs if s.kind == kind]

    def run(self, out: Path, locate) -> dict:
        return self.unit.run(self, out, locate)

    def spec(self) -> dict:
        """Identity and inputs, plus the options it was planned with (a record, not hashed)."""
        return {"kind": self.kind, "hash": self.hash, "fields": self.fields,
                "inputs": [s.name for s in self.inputs], "options": self.options}


def _jsonable(x):
    if isinstance(x, ml_collections.ConfigDict):
        return x.to_dict()
    if isinstance(x, (tuple, set, frozenset)):
        return list(x)
    raise TypeError(f"cannot hash a {type(x).__name__}")


def plain(x):
    """ConfigDicts and tuples as plain JSON values, so fields hash the same however written."""
    return json.loads(json.dumps(x, default=_jsonable))
