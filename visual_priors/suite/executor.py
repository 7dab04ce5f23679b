"""Run a study's steps on this machine, skipping what is done and keeping what finished.

Each step works in `<root>/<name>.partial/` and is renamed to `<root>/<name>/` only when it
succeeds, so a directory without the suffix is always a complete output. A step killed midway
keeps its partial directory: training steps resume there from their last checkpoint. A failed
step is recorded with its error; steps that do not depend on it still run.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from pathlib import Path

import ml_collections

from visual_priors.suite import spec as spec_lib
from visual_priors.suite.registry import Registry
from visual_priors.suite.runners import RUNNERS
from visual_priors.train.loop import Preempted

log = logging.getLogger(__name__)
REGISTRY_FILE = "registry.sqlite"


class StudyFailed(RuntimeError):
    pass


def output_dir(root: Path, step) -> Path:
    return Path(root) / step.name


def is_done(root: Path, step) -> bool:
    return (output_dir(root, step) / "result.json").is_file()


STAGES = ("pretrain", "align", "sft", "evaluate")


def run_study(cfg: ml_collections.ConfigDict, root: str | Path = "runs", *, stage: str = "evaluate",
              only: list[str] | None = None, report: bool = True, echo=print) -> dict:
    """Run every step the study needs up to `stage` that is not finished yet.

    `only` restricts the work to the named runs. Returns {run name: evaluation result} for every
    run whose evaluation is finished, and writes the study report from them.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _enable_compilation_cache(root)
    runs, _ = spec_lib.expand(cfg)
    if only:
        unknown = sorted(set(only) - {r.name for r in runs})
        if unknown:
            raise ValueError(f"unknown runs {unknown}; runs of {cfg.study}: {', '.join(r.name for r in runs)}")
    selected = [r for r in runs if not only or r.name in only]
    steps = spec_lib.topological([r.steps[stage] for r in selected])
    registry = Registry(root / REGISTRY_FILE)
    owner = {}
    for run in runs:
        for step in spec_lib.topological([run.steps["evaluate"]]):
            owner.setdefault(step.hash, run.name)
    for step in steps:
        registry.register(cfg.study, step, owner.get(step.hash))

    def locate(step) -> Path:
        return output_dir(root, step)

    failed: set[str] = set()
    done_now, skipped = 0, 0
    t0 = time.perf_counter()
    for i, step in enumerate(steps, 1):
        label = f"[{i}/{len(steps)}] {step.name}"
        if is_done(root, step):
            if registry.status(step.hash) != "done":
                registry.finish(step, locate(step))
            skipped += 1
            continue
        blocked = [d.name for d in step.inputs if d.hash in failed]
        if blocked:
            failed.add(step.hash)
            registry.fail(step, f"not run: inputs failed ({', '.join(blocked)})")
            echo(f"{label} skipped: inputs failed")
            continue
        echo(f"{label} {_describe(step, owner)}")
        partial = root / f"{step.name}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "spec.json").write_text(json.dumps(step.spec(), indent=1, sort_keys=True))
        registry.start(step)
        t_step = time.perf_counter()
        try:
            result = RUNNERS[step.kind](step, partial, locate)
        except (Preempted, KeyboardInterrupt) as err:  # stop the study; the partial step resumes
            registry.fail(step, f"interrupted: {err or 'KeyboardInterrupt'}")
            registry.close()
            echo(f"{label} interrupted; run the same command again to resume")
            raise
        except Exception as err:  # record, keep going with independent steps
            failed.add(step.hash)
            registry.fail(step, "".join(traceback.format_exception(err))[-4000:])
            echo(f"{label} FAILED: {type(err).__name__}: {err}")
            continue
        result = {"step": step.name, "seconds": time.perf_counter() - t_step, **result}
        (partial / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True, default=float))
        final = locate(step)
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        registry.finish(step, final)
        done_now += 1
        echo(f"{label} done in {result['seconds']:.1f}s")
        if "requested_shares" in result:  # what the run actually read, against what it asked for
            drawn = ", ".join(f"{name} {100 * result['component_shares'][name]:.1f}% "
                              f"(asked {100 * share:.1f}%)"
                              for name, share in result["requested_shares"].items())
            echo(f"    drew {result['tokens']:,} tokens: {drawn}")
    registry.close()

    results = collect(cfg, root, runs)
    echo(f"{cfg.study}: {done_now} steps run, {skipped} reused, {len(failed)} failed "
         f"({time.perf_counter() - t0:.1f}s)")
    if report and results:
        from visual_priors.analysis.report import write_report
        path = write_report(list(results.values()), root / cfg.study, study=cfg.study)
        echo(f"report: {path}")
    if failed:
        raise StudyFailed(f"{len(failed)} steps failed; `visual-priors suite status` shows their errors")
    return results


def _enable_compilation_cache(root: Path) -> None:
    """Reuse compiled programs across processes: same-shape runs compile once per machine."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str((root / ".jax_cache").absolute()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def collect(cfg, root: Path, runs=None) -> dict[str, dict]:
    """Evaluation results of the study's finished runs, in the analysis schema."""
    if runs is None:
        runs, _ = spec_lib.expand(cfg)
    results = {}
    for run in runs:
        step = run.steps["evaluate"]
        if not is_done(root, step):
            continue
        res = json.loads((output_dir(root, step) / "result.json").read_text())
        encoder_step = step.input("features").input("encoder")
        probe = None
        if is_done(root, encoder_step):
            probe = json.loads((output_dir(root, encoder_step) / "result.json").read_text()).get("probe_accuracy")
        # Curves are fitted per series: the text mixture, split further by whatever else the
        # study varies (encoder, SFT set), so runs that differ in those are never pooled.
        series = run.mixture
        if len(set(cfg.encoders)) > 1:
            series += f" / {run.encoder}"
        if len(set(cfg.sft_sets)) > 1:
            series += f" / {run.sft_set}"
        results[run.name] = {"run": run.name, "study": cfg.study, "scale": run.scale,
                             "mixture": series, "text_mixture": run.mixture, "encoder": run.encoder,
                             "encoder_probe": probe, "sft_set": run.sft_set, **res}
    return results


def _describe(step, owner) -> str:
    f = step.fields
    if step.kind == "shards":
        return f"({f['source']}, {f['split']}, {f['tokens']:,} tokens)"
    if step.kind == "labels":
        return f"({step.input('shards').fields['source']}, {f['labeller']['name']})"
    if step.kind in ("pretrain", "align", "sft", "evaluate", "language"):
        return f"({owner.get(step.hash, '')})"
    return ""
