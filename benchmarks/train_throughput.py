"""Pre-training throughput and MFU through the real training loop.

    python benchmarks/train_throughput.py [--scales t1 t2 t3 t4 t5] [--steps 40]
    python benchmarks/train_throughput.py --scales 340M 1B --dtype bfloat16 --batch 8 --seq-len 2048

Tokens/s are the median over logged steps after compilation (the first steps are excluded), on
random tokens (throughput does not depend on the data), with the tiny profile's sequence length
and batch unless given. MFU is MaxText's: model FLOPs (6 N per token plus attention, causal at
half) per second per device over the device's peak. The peak is the chip's datasheet figure on
known accelerators (H100/H200 bf16 989 TFLOP/s dense); on a CPU it is measured here: the best
of several large float32 matmuls (2048 x 2048) through the same XLA backend, re-measured around
every scale and taking the highest seen in the session (a shared VM's speed drifts; the highest
figure makes MFU conservative). Both are printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.config import profiles, scales
from visual_priors.data.batches import ArrayBatches
from visual_priors.model.llm import Llama, count_params
from visual_priors.model.scoring import masked_nll
from visual_priors.parallel import mesh as mesh_lib
from visual_priors.suite import host_memory
from visual_priors.train import flops, loop


def measure(scale: str, steps: int, *, peak: float, seq: int, batch: int, dtype: str,
            remat: str, scan: bool, warmup: int = 5) -> dict:
    prof = profiles.get("tiny")
    cfg = scales.get(scale)
    cfg.update(dict(dtype=dtype, remat=remat, scan_layers=scan))
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, size=(batch * 8, seq + 1)).astype(np.int32)
    mesh = mesh_lib.make_mesh({"data": -1})
    model = mesh_lib.create_sharded(lambda: Llama(cfg, rngs=nnx.Rngs(0)), mesh)

    def loss_fn(m, b):
        loss, count = masked_nll(m, b["tokens"], jnp.ones_like(b["tokens"]))
        return loss, {"tokens": count}

    per_token = flops.train_flops_per_token(cfg, seq)
    with tempfile.TemporaryDirectory() as d:
        settings = loop.TrainSettings(steps=steps + warmup, optim_cfg=prof.pretrain.optim, log_every=1,
                                      progress=False, flops_per_token=per_token, peak_flops=peak, tensorboard=False)
        res = loop.run(model, loss_fn, ArrayBatches({"tokens": tokens}, batch, 0), settings, mesh=mesh, workdir=d)
        records = [json.loads(line) for line in open(f"{d}/metrics.jsonl")]
    steady = records[warmup:]
    tps = float(np.median([r["tokens_per_s"] for r in steady]))
    per_device = tps * per_token / mesh.size
    return {"scale": scale, "params": count_params(cfg), "seq_len": seq, "batch": batch, "dtype": dtype,
            "tokens_per_s": tps, "tflops_per_s_per_device": per_device / 1e12, "mfu": per_device / peak,
            "final_loss": res.final_loss}


def tiny_shape(args) -> tuple[int, int]:
    """(sequence length, batch) from --seq-len / --batch, defaulting to the tiny profile's."""
    prof = profiles.get("tiny")
    return args.seq_len or prof.pretrain.seq_len, args.batch or prof.pretrain.batch_size


def machine_line(device) -> str:
    return (f"# {datetime.date.today()} {platform.node()} {platform.processor() or platform.machine()}, "
            f"{jax.device_count()} x {device.device_kind} ({device.platform}), jax {jax.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=list(scales.TINY_SCALES))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=None, help="default: the tiny profile's")
    parser.add_argument("--batch", type=int, default=None, help="global batch; default: the tiny profile's")
    parser.add_argument("--dtype", default="float32", help="compute dtype (float32 or bfloat16)")
    parser.add_argument("--remat", default="none")
    parser.add_argument("--scan", action="store_true", help="scan over layers")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    seq, batch = tiny_shape(args)
    device = jax.devices()[0]
    peak, source = flops.peak_flops_per_device(device, "bfloat16" if args.dtype == "bfloat16" else "float32")
    measured = device.platform == "cpu"
    print(machine_line(device))
    print(f"# peak {peak / 1e12:.3f} TFLOP/s per device: {source}")
    print(f"{'scale':>5} {'params':>14} {'tokens/s':>10} {'TFLOP/s/dev':>11} {'MFU':>6}")
    rows = []
    for s in args.scales:
        r = measure(s, args.steps, peak=peak, seq=seq, batch=batch, dtype=args.dtype, remat=args.remat,
                    scan=args.scan)
        if measured:
            peak = max(peak, flops.measured_matmul_flops.__wrapped__())
        rows.append(r)
    for r in rows:
        r["mfu"] = r["tflops_per_s_per_device"] * 1e12 / peak
        print(f"{r['scale']:>5} {r['params']:>14,} {r['tokens_per_s']:>10,.0f} "
              f"{r['tflops_per_s_per_device']:>11.4f} {100 * r['mfu']:>5.1f}%", flush=True)
    print(f"# highest peak seen: {peak / 1e12:.3f} TFLOP/s per device")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device.device_kind, "peak_flops": peak, "peak_source": source, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
