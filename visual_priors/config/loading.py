"""Load `get_config(arg)` files with command-line overrides, and validate studies.

`load("experiments/quickstart.py:tiny", ["pretrain.optim.lr=1e-3"])` imports the file, calls
get_config("tiny"), applies the overrides (values parsed as Python literals, otherwise kept as
strings) and validates the result. Unknown keys fail with the keys that do exist.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from visual_priors.config import mixtures, scales, stages, studies
from visual_priors.data import sources as sources_lib
from visual_priors.errors import BadValue, MissingFile, UnknownKey


def load(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise MissingFile(f"config file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise BadValue(f"{path} defines no get_config(arg)")
    cfg = module.get_config(arg) if arg else module.get_config()
    apply_overrides(cfg, overrides)
    if "study" in cfg:
        validate_study(cfg)
    return cfg


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    for item in overrides:
        key, sep, raw = item.removeprefix("--").removeprefix("config.").partition("=")
        if not sep:
            raise BadValue(f"override {item!r} is not of the form key=value")
        node, parts = cfg, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                where = ".".join(parts[:i]) or "the top level"
                valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
                raise UnknownKey(f"unknown config key {key!r}: {part!r} is not in {where} (valid: {valid})")
            if i < len(parts) - 1:
                node = node[part]
        try:
            node[parts[-1]] = parse_value(raw)
        except TypeError:  # ConfigDict keeps a field's type: lr=abc is not a float
            expected = type(node[parts[-1]]).__name__
            raise BadValue(f"{key} must be a {expected}, got {raw!r}", f"--set {key}") from None


def parse_value(raw: str):
    """A Python literal when `raw` is one (numbers, tuples, booleans...), else the string."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def validate_study(cfg: ml_collections.ConfigDict) -> None:
    """Names and numbers a study refers to must exist and make sense."""
    corpora = sources_lib.load_corpora(cfg.data.corpora) if cfg.data.get("corpora") else {}
    known = sources_lib.known_sources(corpora)
    for grid in studies.grids(cfg):
        for name in grid.scales:
            scales.get(name)
        for name in grid.mixtures:
            mixtures.parse(name, known_sources=known, default_pool=cfg.data.get("pool"))
        # An imported encoder may lack its path while a study is planned; running refuses it.
        stages.validate_encoders(grid.encoders, cfg.imported_encoders, require_paths=False)
        for name in grid.sft_sets:
            stages.parse_sft_set(name)
