"""AdamW with linear warm-up and cosine decay, and regex rules for what trains.

Freeze rules follow big_vision: an ordered list of (regex over the parameter path, trainable?)
pairs, first match wins, and a parameter no rule matches is frozen. Frozen parameters are split
out of the model before differentiation, so they get neither a gradient nor optimizer state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax
import optax
from flax import nnx

from visual_priors.errors import BadValue

ALL_TRAINABLE = ((".*", True),)


def param_path(path) -> str:
    return "/".join(str(p) for p in path)


def trainable_filter(rules: Sequence[Sequence]):
    """An NNX filter selecting the parameters the rules mark trainable."""
    compiled = [(re.compile(pattern), bool(train)) for pattern, train in rules]

    def is_trainable(path, value) -> bool:
        if not isinstance(value, nnx.Param):
            return False
        name = param_path(path)
        for pattern, train in compiled:
            if pattern.fullmatch(name):
                return train
        return False

    return is_trainable


def split(model: nnx.Module, rules: Sequence[Sequence]) -> tuple:
    """(graphdef, trainable state, frozen state) of `model` under the freeze `rules`."""
    graphdef, trainable, frozen = nnx.split(model, trainable_filter(rules), ...)
    if not jax.tree.leaves(trainable):
        raise BadValue(f"freeze rules {list(rules)} leave nothing to train")
    return graphdef, trainable, frozen


def schedule(peak_lr: float, total_steps: int, warmup_frac: float = 0.0,
             warmup_steps: int | None = None, min_lr_ratio: float = 0.1) -> optax.Schedule:
    """Linear warm-up to peak, then cosine decay to min_lr_ratio * peak."""
    total_steps = max(int(total_steps), 1)
    warm = int(warmup_steps) if warmup_steps is not None else int(round(warmup_frac * total_steps))
    warm = min(max(warm, 1), total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak_lr, warmup_steps=warm,
        decay_steps=max(total_steps, warm + 1), end_value=peak_lr * min_lr_ratio)


def adamw(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW from an optimizer config (lr, warmup_frac or warmup_steps, b1, b2, eps, weight_decay, clip)."""
    warmup_steps = cfg.get("warmup_steps", None)
    lr = schedule(cfg.lr, total_steps, cfg.get("warmup_frac", 0.0), warmup_steps,
                  cfg.get("min_lr_ratio", 0.1))
    chain = []
    if cfg.get("clip", 0.0):
        chain.append(optax.clip_by_global_norm(cfg.clip))
    chain.append(optax.adamw(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.95),
                             eps=cfg.get("eps", 1e-8), weight_decay=cfg.get("weight_decay", 0.1)))
    return optax.chain(*chain), lr
