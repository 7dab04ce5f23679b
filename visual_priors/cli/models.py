"""`scales`, `convert`, `encoders`, `colour` and `plan-memory`: the models themselves, their
checkpoints, and what one costs or knows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register_scales(sub) -> None:
    sub.add_parser("scales", help="every model scale with its parameter count").set_defaults(func=cmd_scales)


def register(sub) -> None:
    convert = sub.add_parser("convert", help="import or export Hugging Face Llama checkpoints").add_subparsers(
        dest="convert_command", required=True)
    p = convert.add_parser("import", help="Hugging Face Llama directory -> visual-priors LLM checkpoint")
    p.add_argument("source", metavar="HF_DIR", help="config.json + model.safetensors (or shards with an index)")
    p.add_argument("dest", metavar="OUT_DIR")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="parameter dtype of the checkpoint (default: float32)")
    p.set_defaults(func=cmd_convert)
    p = convert.add_parser("export", help="visual-priors LLM checkpoint -> Hugging Face Llama directory")
    p.add_argument("source", metavar="CKPT_DIR", help="holds params/ and metadata.json")
    p.add_argument("dest", metavar="HF_DIR")
    p.set_defaults(func=cmd_convert)
    enc = sub.add_parser("encoders", help="vision encoders: list what is available, import a checkpoint")
    enc.add_argument("--root", default="runs", help="where finished encoder steps are listed from")
    enc.set_defaults(func=cmd_encoders)
    enc_sub = enc.add_subparsers(dest="encoders_command")
    p = enc_sub.add_parser("import", help="a public checkpoint -> the project's frozen-encoder format")
    p.add_argument("source", metavar="SRC", help="Hugging Face directory, or a torchvision .pth with --arch")
    p.add_argument("dest", metavar="OUT_DIR")
    p.add_argument("--arch", help="CNN architecture of a .pth file (see `visual-priors encoders`)")
    p.set_defaults(func=cmd_encoders_import)
    p = sub.add_parser("colour", help="PRH's colour probe (Fig. 8) of a finished pre-trained LLM")
    p.add_argument("--root", default="runs", help="the run root holding the step (default: runs)")
    p.add_argument("--step", required=True, metavar="pretrain-HASH",
                   help="a finished pretrain step under --root (`suite status` lists them)")
    p.add_argument("--out", help="write colour.json, colour_ab.png and colour_3d.png here")
    # Defaults are the probe's own (visual_priors.eval.colour.colour_probe); the output names them.
    p.add_argument("--mds-inits", type=int, metavar="N", help="MDS random starts, the best kept (default: the probe's few; PRH 1,000)")
    p.add_argument("--pairs", type=int, metavar="N", help="pixel pairs drawn (default PRH's 300,000)")
    p.add_argument("--images", type=int, metavar="N", help="world images the pairs are drawn from")
    p.add_argument("--permutations", type=int, metavar="N", help="shuffled assignments of the baseline")
    p.add_argument("--seed", type=int, metavar="N", help="fixes the pairs, MDS starts and permutations (default 0)")
    p.set_defaults(func=cmd_colour)
    p = sub.add_parser("plan-memory", help="per-device memory of one train step, from the compiled program")
    p.add_argument("--scale", required=True, help="a paper or tiny scale, e.g. 7B")
    p.add_argument("--mesh", type=_mesh_arg, default={"fsdp": -1},
                   help="axis sizes, e.g. data=2,fsdp=4,tensor=1 (dcn_* for across slices; default fsdp=-1)")
    p.add_argument("--devices", type=int, default=8, help="devices in the mesh (default 8)")
    p.add_argument("--batch", type=int, default=None, help="global batch in sequences (default: 1 per device)")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--accum", type=int, default=1, help="gradient-accumulation microbatches")
    p.add_argument("--dtype", default="bfloat16", help="compute dtype")
    p.add_argument("--param-dtype", default="float32", help="master-weight dtype")
    p.add_argument("--remat", default="full", help="none, full, dots or dots_with_batch")
    p.add_argument("--no-scan", action="store_true", help="unroll the layers instead of scanning them")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_plan_memory)


def cmd_scales(args) -> int:
    from visual_priors.config import scales
    from visual_priors.model.llm import count_params

    print(f"{'scale':>6} {'d_model':>7} {'layers':>6} {'heads':>5} {'kv':>3} {'ffn':>6} {'vocab':>6} "
          f"{'tied':>4} {'params':>15} {'vs name':>8}")
    for name in scales.ALL_SCALES:
        c = scales.get(name)
        n = count_params(c)
        nominal = scales.nominal_params(name)
        rel = f"{100 * (n / nominal - 1):+.1f}%" if nominal else ""
        print(f"{name:>6} {c.d_model:>7} {c.n_layers:>6} {c.n_heads:>5} {c.n_kv_heads:>3} {c.ffn_dim:>6} "
              f"{c.vocab_size:>6} {'yes' if c.tie_embeddings else 'no':>4} {n:>15,} {rel:>8}")
    return 0


def cmd_convert(args) -> int:
    from visual_priors.model.convert import hf_llama
    from visual_priors.model.llm import count_params

    if args.convert_command == "import":
        cfg = hf_llama.import_checkpoint(args.source, args.dest, dtype=args.dtype)
    else:
        cfg = hf_llama.export_checkpoint(args.source, args.dest)
    print(f"wrote {args.dest}: d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads "
          f"({cfg.n_kv_heads} kv, head_dim {cfg.head_dim}), ffn {cfg.ffn_dim}, vocab {cfg.vocab_size}, "
          f"{'tied' if cfg.tie_embeddings else 'untied'} embeddings, {count_params(cfg):,} parameters")
    return 0


def cmd_encoders(args) -> int:
    """Every vision encoder a study can name, and those already made under --root."""
    from visual_priors.config.stages import LOCAL_ENCODERS
    from visual_priors.model.convert import hf_vision, torchvision_cnn
    from visual_priors.suite.vision_steps import finished_encoders

    print("local (trained on world images; name them in cfg.encoders):")
    for name, (what, stands_for) in LOCAL_ENCODERS.items():
        print(f"  {name:<12} {what} (stands in for {stands_for})")
    print("imported Hugging Face families (imported_encoders.<name>.path = checkpoint directory):")
    for name in hf_vision.FAMILIES:
        print(f"  {name:<12} {hf_vision.DESCRIPTIONS[name]}")
    print("imported CNNs (imported_encoders.<name>.path = .pth file, .arch = one of these):")
    for name, what in torchvision_cnn.ARCHS:
        print(f"  {name:<22} {what}")
    made = finished_encoders(args.root)
    if made:
        print(f"made under {args.root}:")
        print(f"  {'step':<22} {'encoder':<14} {'kind probe':>10} {'tokens':>6} {'width':>5}")
    for e in made:
        probe = "-" if e["probe_accuracy"] is None else f"{100 * e['probe_accuracy']:.1f}%"
        tokens = "-" if e["tokens"] is None else e["tokens"]
        width = "-" if e["width"] is None else e["width"]
        print(f"  {e['step']:<22} {e['encoder']:<14} {probe:>10} {tokens:>6} {width:>5}")
    return 0


def cmd_encoders_import(args) -> int:
    from visual_priors.model import encoders

    meta = encoders.import_encoder({"path": args.source, "arch": args.arch or ""}, args.dest)
    print(f"{args.dest}: {meta['kind']} {meta.get('family') or meta.get('arch')}, "
          f"{meta['config']['image_size']} px input")
    return 0


def cmd_colour(args) -> int:
    """PRH's colour probe of one finished pre-trained LLM: its errors beside the shuffled ones."""
    from visual_priors.eval import colour

    given = {"n_images": args.images, "n_pairs": args.pairs, "mds_inits": args.mds_inits,
             "n_permutations": args.permutations, "seed": args.seed}
    r = colour.probe_run(args.root, args.step, out=args.out, **{k: v for k, v in given.items() if v is not None})
    vis = r["vision"]
    print(f"colour probe of {r['pretrain_step']}: {len(r['language']['names'])} colour words; "
          f"{vis['pairs_used']:,} pixel pairs of {vis['n_images']} world images on a "
          f"{vis['grid_levels']}-level grid ({len(vis['names'])} colours); best of {r['mds_inits']} "
          f"MDS starts")
    print(f"{'':<9} {'error':>6} {'shuffled (sd)':>17} {'p':>6} {'Delta E':>8}")
    for half in ("language", "vision"):
        sh = r[f"{half}_shuffled"]
        print(f"{half:<9} {r[f'{half}_error']:>6.3f} {sh['mean']:>8.3f} +- {sh['std']:<5.3f} "
              f"{sh['p_value']:>6.3f} {r[half]['error']:>8.2f}")
    print("error: RMS distance to CIELAB after a similarity fit over the targets' RMS spread (0 perfect, "
          "1 no better than their mean); shuffled: the same with the colours permuted (mean +- sd, "
          f"p-value of {r['language']['shuffled']['n_permutations']} permutations)")
    if args.out:
        print(f"wrote {Path(args.out) / 'colour.json'}, colour_ab.png and colour_3d.png")
    return 0


def _mesh_arg(text: str) -> dict:
    """"data=2,fsdp=-1,dcn_data=2" -> {"data": 2, "fsdp": -1, "dcn_data": 2}."""
    sizes = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"mesh axis {part!r} needs a size, e.g. fsdp=8")
        try:
            sizes[name.strip()] = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"mesh axis {name!r} has a size that is not an integer: {value!r}")
    return sizes


def cmd_plan_memory(args) -> int:
    from visual_priors.train import memory

    n = args.devices
    memory.ensure_host_devices(n)  # before anything starts JAX
    import jax

    devices = jax.devices()[:n]
    r = memory.plan_memory(args.scale, args.mesh, batch=args.batch or n, seq_len=args.seq_len,
                           dtype=args.dtype, param_dtype=args.param_dtype, remat=args.remat,
                           scan_layers=not args.no_scan, accum_steps=args.accum, devices=devices)
    if args.format == "json":
        print(json.dumps(r, indent=1))
        return 0
    gib = {k: v / 2 ** 30 for k, v in r["per_device_bytes"].items()}
    print(f"{r['scale']} ({r['params']:,} parameters) on mesh {r['mesh']}, global batch {r['batch']} x "
          f"{r['seq_len']} tokens in {r['accum_steps']} microbatch(es), {r['dtype']} compute, "
          f"{r['param_dtype']} weights, remat {r['remat']}, {'scanned' if r['scan_layers'] else 'unrolled'} layers")
    print(f"per device: {gib['total']:.2f} GiB = arguments {gib['arguments']:.2f} + outputs {gib['outputs']:.2f} "
          f"- donated {gib['aliased']:.2f} + temporaries {gib['temporaries']:.2f}  "
          f"(compiled for {r['compiled_for']} in {r['compile_s']:.1f} s)")
    return 0
