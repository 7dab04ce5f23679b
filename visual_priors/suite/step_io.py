"""What every step runner shares: finding its inputs' outputs, the world, the tokenizer, and
saving or restoring a module's parameters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ml_collections
from flax import nnx

from visual_priors.data import tokenizer as tokenizer_lib
from visual_priors.errors import BadFile, read_json
from visual_priors.model.params_io import load_params, save_params
from visual_priors.world import World

Locate = Callable[[object], Path]  # step -> its finished output directory


def world_of(world: dict) -> World:
    """The world a stage's `world` field names (its generator version is identity only)."""
    return World(seed=world["seed"], image_size=world["image_size"])


def tokenizer_of(step, locate: Locate):
    out = locate(step.input("tokenizer"))
    return tokenizer_lib.load_tokenizer(out / read_result(out)["path"])


def read_result(out: Path) -> dict:
    """A finished step's ``result.json``. A damaged one is an error naming the file, and is left
    as it is: deleting the step's directory runs the step again."""
    try:
        return read_json(Path(out) / "result.json", "step result")
    except BadFile as err:
        raise BadFile(f"{err.problem}; delete {Path(out).name}/ to run that step again", err.where) from None


def result_of(step, locate: Locate) -> dict:
    return read_result(locate(step))


def as_config(d: dict) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(d)


def save_module(module, path: Path, metadata: dict) -> None:
    save_params(path, nnx.state(module, nnx.Param).to_pure_dict(), metadata)


def restore_module(module, path: Path, expect: dict):
    """Fill `module`'s parameters from a checkpoint written by `save_module`, checking its metadata."""
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, load_params(path, state.to_pure_dict(), expect=expect))
    nnx.update(module, state)
    return module
