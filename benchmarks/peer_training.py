"""Training tokens/s of the project's loop against transformers + torch on the same shapes.

    python benchmarks/peer_training.py [--scales t1 t2 t3 t4 t5] [--steps 30] [--rounds 2]

Needs the `hf` extra (torch CPU build, transformers). Per scale both sides start from the same
weights (ours saved as a Hugging Face checkpoint, loaded by `LlamaForCausalLM`), read the same
random tokens (throughput does not depend on the data), and train with the same AdamW (warm-up
+ cosine schedule, global-norm clipping, decoupled weight decay) in float32 on the tiny
profile's batch and sequence length. Ours runs through `train.loop.run`, the loop every
pre-training step uses; theirs is the plain eager PyTorch loop. The two alternate for
`--rounds` rounds so that drift in a shared machine's speed hits both; each side's figure is
the median over rounds of the median over its logged steady-state windows (its first `--warmup`
steps, compilation included, are left out). The ratio (ours / theirs) is the figure to compare
across machines. Beside it, the largest difference between the two loss curves over the first
round's steps checks that both trained the same model the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.config import profiles, scales
from visual_priors.data.batches import ArrayBatches
from visual_priors.model.convert import hf_llama
from visual_priors.model.llm import Llama, count_params
from visual_priors.model.scoring import masked_nll
from visual_priors.parallel import mesh as mesh_lib
from visual_priors.suite import host_memory
from visual_priors.train import loop, optim

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import machine_line  # noqa: E402


def ours(model, tokens: np.ndarray, steps: int, optim_cfg, batch: int, log_every: int) -> tuple[list, list]:
    """(tokens/s per logged window, loss per step) of `steps` steps of the project's loop."""
    def loss_fn(m, b):
        loss, count = masked_nll(m, b["tokens"], jnp.ones_like(b["tokens"]))
        return loss, {"tokens": count}

    mesh = mesh_lib.make_mesh({"data": -1})
    with tempfile.TemporaryDirectory() as d:
        settings = loop.TrainSettings(steps=steps, optim_cfg=optim_cfg, log_every=log_every, progress=False,
                                      tensorboard=False)
        res = loop.run(model, loss_fn, ArrayBatches({"tokens": tokens}, batch, 0), settings, mesh=mesh, workdir=d)
        records = [json.loads(line) for line in open(f"{d}/metrics.jsonl")]
    return [r["tokens_per_s"] for r in records], list(res.losses)


def theirs(model, tokens: np.ndarray, steps: int, optim_cfg, batch: int, log_every: int) -> tuple[list, list]:
    """The same for transformers' LlamaForCausalLM, trained eagerly with torch.optim.AdamW."""
    import torch

    _, lr = optim.adamw(optim_cfg, steps)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0, betas=(optim_cfg.b1, optim_cfg.b2),
                            eps=optim_cfg.eps, weight_decay=optim_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: float(lr(s)))
    model.train()
    rates, losses = [], []
    t_window, tokens_window = time.perf_counter(), 0
    data = ArrayBatches({"tokens": tokens}, batch, 0)  # the same batches in the same order as ours
    for step in range(steps):
        rows = torch.as_tensor(next(data)["tokens"], dtype=torch.long)
        loss = model(input_ids=rows, labels=rows).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if optim_cfg.get("clip", 0.0):
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        tokens_window += rows.shape[0] * (rows.shape[1] - 1)
        if (step + 1) % log_every == 0:
            now = time.perf_counter()
            rates.append(tokens_window / (now - t_window))
            t_window, tokens_window = now, 0
    return rates, losses


def measure(scale: str, *, steps: int, rounds: int, warmup: int, log_every: int, seq: int, batch: int) -> dict:
    import transformers

    prof = profiles.get("tiny")
    cfg = scales.get(scale)  # float32, as the tiny scales are
    rng = np.random.default_rng(0)
    # Distinct batches for every step of a round, so neither side sees a repeat.
    tokens = rng.integers(0, cfg.vocab_size, size=(batch * (steps + warmup), seq + 1)).astype(np.int32)
    with tempfile.TemporaryDirectory() as hf_dir:
        hf_llama.save(Llama(cfg, rngs=nnx.Rngs(0)), hf_dir)
        fresh_theirs = lambda: transformers.LlamaForCausalLM.from_pretrained(hf_dir, torch_dtype="float32")
        fresh_ours = lambda: hf_llama.load(hf_dir)
        ours_rates, theirs_rates, curves = [], [], None
        for r in range(rounds):
            o_rates, o_loss = ours(fresh_ours(), tokens, steps + warmup, prof.pretrain.optim, batch, log_every)
            t_rates, t_loss = theirs(fresh_theirs(), tokens, steps + warmup, prof.pretrain.optim, batch,
                                     log_every)
            skip = warmup // log_every
            ours_rates.append(float(np.median(o_rates[skip:])))
            theirs_rates.append(float(np.median(t_rates[skip:])))
            if curves is None:
                curves = (np.asarray(o_loss), np.asarray(t_loss))
    ours_tps, theirs_tps = float(np.median(ours_rates)), float(np.median(theirs_rates))
    return {"scale": scale, "params": count_params(cfg), "batch": batch, "seq_len": seq,
            "ours_tokens_per_s": ours_tps, "theirs_tokens_per_s": theirs_tps, "ratio": ours_tps / theirs_tps,
            "rounds_ours": ours_rates, "rounds_theirs": theirs_rates,
            "loss_max_abs_diff": float(np.max(np.abs(curves[0] - curves[1]))),
            "loss_first_last": [float(curves[0][0]), float(curves[0][-1])]}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=list(scales.TINY_SCALES))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round and side")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps (compilation)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    if args.warmup % args.log_every or args.steps % args.log_every:
        parser.error("--warmup and --steps must be multiples of --log-every")
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    prof = profiles.get("tiny")
    seq, batch = prof.pretrain.seq_len, prof.pretrain.batch_size
    print(machine_line(jax.devices()[0]) + f", torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"# batch {batch} x {seq}, float32, {args.steps} timed steps x {args.rounds} rounds per side")
    print(f"{'scale':>5} {'params':>12} {'ours tok/s':>11} {'theirs tok/s':>13} {'ratio':>6} {'max |dloss|':>11}")
    rows = []
    for s in args.scales:
        r = measure(s, steps=args.steps, rounds=args.rounds, warmup=args.warmup, log_every=args.log_every,
                    seq=seq, batch=batch)
        rows.append(r)
        print(f"{r['scale']:>5} {r['params']:>12,} {r['ours_tokens_per_s']:>11,.0f} "
              f"{r['theirs_tokens_per_s']:>13,.0f} {r['ratio']:>6.2f} {r['loss_max_abs_diff']:>11.2e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
