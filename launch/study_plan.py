"""A study's unfinished steps as launchable units: command, machine and dependencies.

Pure: nothing here touches a cluster. `build` turns `visual_priors.suite.spec.expand`'s steps
into `Unit`s in dependency order; each unit runs

    visual-priors [multi-host flags] suite step CONFIG STEP_NAME --root ROOT [--set key=value ...]

Data steps (tokenizer, shards, labels) go on CPU machines, every other kind on the study's
accelerator. Multi-host start-up differs by accelerator: every host of a TPU slice runs the same
command with `--distributed auto` (JAX finds the coordinator, the process count and its own id
from the TPU environment); the nodes of a GPU step are given `--coordinator-address`,
`--num-processes` and `--process-id` from the launcher's environment (`Rendezvous`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Callable, Sequence

CPU_KINDS = frozenset({"tokenizer", "shards", "labels"})

# Cloud TPU names a v4/v5p slice by TensorCores (two per chip), a v5e/v6e slice by chips.
_CORES_PER_CHIP = {"v4": 2, "v5p": 2, "v5e": 1, "v6e": 1}
_TPU_ALIASES = {"v5litepod": "v5e"}
_TOPOLOGY_DIMS = {"v4": 3, "v5p": 3, "v5e": 2, "v6e": 2}
CHIPS_PER_HOST = 4
# v5e and v6e also come as single hosts of eight chips.
_SINGLE_HOST_MAX = {"v4": 4, "v5p": 4, "v5e": 8, "v6e": 8}


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """What every accelerator step of the study runs on."""

    family: str  # "tpu" or "gpu"
    type: str  # tpu: v4, v5p, v5e, v6e; gpu: h100, a100, ...
    topology: str  # chips of the slice ("4x4x4"), or GPUs per node ("8", or "8x4" for 4 nodes)
    hosts: int  # one process per host
    per_host: int  # chips or GPUs each host uses

    @property
    def multihost(self) -> bool:
        return self.hosts > 1


def tpu(spec: str) -> Accelerator:
    """A TPU slice from its Cloud TPU name, e.g. v5p-128 (64 chips, 4x4x4, 16 hosts)."""
    match = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", spec)
    version = _TPU_ALIASES.get(match.group(1), match.group(1)) if match else None
    if version not in _CORES_PER_CHIP:
        raise ValueError(f"unknown TPU {spec!r}: expected one of "
                         f"{', '.join(f'{v}-N' for v in _CORES_PER_CHIP)} (e.g. v5p-128)")
    cores = int(match.group(2))
    chips = cores // _CORES_PER_CHIP[version]
    if chips < 1 or chips & (chips - 1) or cores % _CORES_PER_CHIP[version]:
        raise ValueError(f"TPU {spec!r} is not a slice of a power-of-two number of chips")
    single = chips <= _SINGLE_HOST_MAX[version]
    return Accelerator("tpu", version, _balanced_topology(chips, _TOPOLOGY_DIMS[version]),
                       hosts=1 if single else chips // CHIPS_PER_HOST,
                       per_host=chips if single else CHIPS_PER_HOST)


def gpu(gpu_type: str, per_node: int, nodes: int = 1) -> Accelerator:
    if per_node < 1 or nodes < 1:
        raise ValueError(f"need at least one GPU on at least one node, got {per_node} x {nodes}")
    topology = f"{per_node}x{nodes}" if nodes > 1 else str(per_node)
    return Accelerator("gpu", gpu_type.lower(), topology, hosts=nodes, per_host=per_node)


def _balanced_topology(chips: int, dims: int) -> str:
    # Doubling the shortest side keeps the slice as cubic (or square) as Cloud TPU offers it;
    # sides are written shortest first, an unused one last (2x2x1, 2x2x2, 2x2x4, 2x4x4, ...).
    sides = [1] * dims
    while math.prod(sides) < chips:
        sides[sides.index(min(sides))] *= 2
    return "x".join(str(s) for s in sorted(sides, key=lambda s: (s == 1, s)))


class Raw(str):
    """A shell word left for the shell to expand on the machine, e.g. "$SLURM_PROCID"."""


def shell_join(words: Sequence[str]) -> str:
    return " ".join(w if isinstance(w, Raw) else shlex.quote(w) for w in words)


@dataclasses.dataclass(frozen=True)
class Rendezvous:
    """Where the processes of a multi-node GPU step meet, as words a launcher's shell expands."""

    address: str
    count: str
    index: str


@dataclasses.dataclass(frozen=True)
class Unit:
    step: str  # the step's name, <kind>-<hash>
    kind: str
    needs: tuple[str, ...]  # the unfinished inputs, which must complete first
    accelerator: Accelerator | None  # None: a CPU machine
    argv: tuple[str, ...]  # the `suite step ...` part of the command

    @property
    def hosts(self) -> int:
        return self.accelerator.hosts if self.accelerator else 1


def build(steps: Sequence, *, config: str, root: str, overrides: Sequence[str] = (),
          accelerator: Accelerator | None = None,
          finished: Callable[[object], bool] = lambda step: False) -> list[Unit]:
    """One unit per unfinished step, in the steps' (dependency) order."""
    todo = [s for s in steps if not finished(s)]
    pending = {s.name for s in todo}
    sets = tuple(word for item in overrides for word in ("--set", item))
    return [Unit(step=s.name, kind=s.kind,
                 needs=tuple(dict.fromkeys(i.name for i in s.inputs if i.name in pending)),
                 accelerator=None if s.kind in CPU_KINDS else accelerator,
                 argv=("suite", "step", config, s.name, "--root", root, *sets))
            for s in todo]


def command(unit: Unit, program: str = "visual-priors", rendezvous: Rendezvous | None = None) -> list[str]:
    """The unit's command line as one host runs it."""
    return [program, *_multihost_flags(unit, rendezvous), *unit.argv]


def _multihost_flags(unit: Unit, rendezvous: Rendezvous | None) -> list[str]:
    acc = unit.accelerator
    if acc is None or not acc.multihost:
        return []
    if acc.family == "tpu":
        return ["--distributed", "auto"]
    if rendezvous is None:
        raise ValueError(f"{unit.step} runs on {acc.hosts} GPU nodes: this launcher cannot tell "
                         f"them where to meet")
    return ["--coordinator-address", rendezvous.address, "--num-processes", rendezvous.count,
            "--process-id", rendezvous.index]


def load(config: str, overrides: Sequence[str] = ()):
    """The study's config and its steps in dependency order."""
    from visual_priors.config import loading
    from visual_priors.suite import spec

    cfg = loading.load(config, overrides)
    return cfg, spec.expand(cfg)[1]


def finished_under(root: str) -> Callable[[object], bool]:
    """Whether a step's output is complete under `root` (a local path or gs://...), as the
    suite's executor decides it: `<root>/<step>/result.json` exists."""
    from etils import epath

    base = epath.Path(root)
    return lambda step: (base / step.name / "result.json").exists()
