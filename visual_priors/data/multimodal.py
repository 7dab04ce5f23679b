"""Image-text and text-only examples for alignment and instruction tuning.

Examples are rendered through one chat template; the loss covers answer tokens only. Images are
referenced by row into a cached feature array of the frozen encoder, so the encoder never runs
during training. Batches hold either only image examples or only text examples, so each jitted
step sees one fixed shape, and the batch order is a seeded shuffle that a checkpoint can resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROMPT_TEMPLATE = "USER: {prompt}\nASSISTANT:"
# Batches are cut to their longest row, rounded up to a multiple of this: most rows are far
# shorter than the longest prompt + answer, and one compiled shape per bucket stays cheap.
LENGTH_BUCKET = 16
LETTERS = "ABCDEFGHIJ"


def question_prompt(question: str, options: Sequence[str]) -> str:
    lines = [question] + [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    return "\n".join(lines)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    return [tokenizer.bos_id] + tokenizer.encode(PROMPT_TEMPLATE.format(prompt=prompt))


def answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer.encode(" " + answer) + [tokenizer.eos_id]


def encode_example(tokenizer, prompt: str, answer: str, text_len: int) -> tuple[np.ndarray, np.ndarray]:
    """tokens [text_len + 1] and a mask over them that is 1 on answer tokens.

    Over-long prompts lose their start, so the question and the answer always survive.
    """
    p, a = fit(prompt_ids(tokenizer, prompt), answer_ids(tokenizer, answer), text_len + 1)
    ids = p + a
    tokens = np.full(text_len + 1, tokenizer.pad_id, np.int32)
    mask = np.zeros(text_len + 1, np.float32)
    tokens[: len(ids)] = ids
    mask[len(p): len(ids)] = 1.0
    return tokens, mask


def fit(prompt: list[int], answer: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut a prompt + answer pair to `budget` tokens: the prompt loses its start first (the
    question is at its end), down to half the budget; then the answer loses its end."""
    if len(prompt) + len(answer) <= budget:
        return prompt, answer
    keep_answer = min(len(answer), max(budget // 2, budget - len(prompt)))
    keep_prompt = budget - keep_answer
    return prompt[len(prompt) - keep_prompt:], answer[:keep_answer]


class ExampleBatches:
    """Epoch-shuffled batches of encoded examples, each cut to its longest row (in steps of
    LENGTH_BUCKET, which changes no loss: the rest is padding after every answer);
    checkpointable by position."""

    def __init__(self, tokens: np.ndarray, mask: np.ndarray, feats: np.ndarray | None,
                 feat_index: np.ndarray, batch_size: int, seed: int):
        self.tokens, self.mask, self.feats = tokens, mask, feats
        # Each row's length: through its last answer token (the mask's last 1).
        width = mask.shape[1]
        self.lengths = np.where(mask.any(axis=1), width - np.argmax(mask[:, ::-1] > 0, axis=1), width)
        self.feat_index = np.asarray(feat_index)  # -1 marks a text-only example
        self.batch_size = batch_size
        self.seed = seed
        image_rows = np.flatnonzero(self.feat_index >= 0)
        text_rows = np.flatnonzero(self.feat_index < 0)
        rng = np.random.default_rng(seed)
        batches = []
        for rows in (image_rows, text_rows):
            rows = rng.permutation(rows)
            batches += [rows[i:i + batch_size] for i in range(0, len(rows) - batch_size + 1, batch_size)]
        if not batches:
            raise ValueError(f"{len(self.feat_index)} examples make no full batch of {batch_size}")
        self.batches = [batches[i] for i in rng.permutation(len(batches))]
        self.position = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        rows = self.batches[self.position % len(self.batches)]
        self.position += 1
        width = min(self.tokens.shape[1], -(-int(self.lengths[rows].max()) // LENGTH_BUCKET) * LENGTH_BUCKET)
        batch = {"tokens": self.tokens[rows, :width], "mask": self.mask[rows, :width]}
        if self.feat_index[rows[0]] >= 0:
            batch["feats"] = self.feats[self.feat_index[rows]]
        return batch

    def get_state(self) -> dict:
        return {"position": self.position}

    def set_state(self, state: dict) -> None:
        self.position = int(state["position"])
