"""Run a study's steps on this machine, skipping what is done and keeping what finished.

Each step works in `<root>/<name>.partial/` and is renamed to `<root>/<name>/` only when it
succeeds, so a directory without the suffix is always a complete output. A step killed midway
keeps its partial directory: training steps resume there from their last checkpoint.

Work is handed out by the registry (`registry.py`) under leases, so one worker or several (on
this host or others sharing the root) run every step exactly once: each claims a step whose
inputs are done, renews its lease while it works, and records the result. A failed step is
retried with exponential back-off until its attempts run out, and is reported with its log
tail; steps that do not depend on it keep running. After a crash or SIGKILL the same command
picks up where it stopped: finished steps are kept, an abandoned step's lease expires and the
step is taken over. Same-shape pre-training steps can be packed: trained together in one
compiled program (`packed_steps.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import ml_collections
from tqdm.auto import tqdm

from visual_priors.config import stages as stages_lib, studies as studies_lib
from visual_priors.errors import BadValue
from visual_priors.suite import host_memory, spec as spec_lib
from visual_priors.suite.registry import Registry, worker_id
from visual_priors.suite.step_io import read_result
from visual_priors.suite.vision_steps import ImportedEncoder
from visual_priors.train.compile_meter import CompileMeter
from visual_priors.train.loop import Preempted

log = logging.getLogger(__name__)
REGISTRY_FILE = "registry.sqlite"
# The run steps each stage command makes: an LLM comes with its held-out perplexity.
STAGES = {"pretrain": ("pretrain", "perplexity"), "align": ("align",), "sft": ("sft",), "evaluate": ("evaluate",)}
LOG_FILE = "log.txt"
LOG_TAIL_LINES = 30


class StudyFailed(RuntimeError):
    pass


def output_dir(root: Path, step) -> Path:
    return Path(root) / step.name


def partial_dir(root: Path, step) -> Path:
    return Path(root) / f"{step.name}.partial"


def is_done(root: Path, step) -> bool:
    return (output_dir(root, step) / "result.json").is_file()


class Options:
    """How the steps run, not what they make: none of this enters a step's identity."""

    def __init__(self, *, workers: int = 1, retries: int = 2, backoff_s: float = 10.0,
                 lease_s: float = 120.0, pack: int = 1, poll_s: float = 1.0):
        if workers < 1 or retries < 0 or pack < 1:
            raise BadValue(f"need workers >= 1, retries >= 0 and pack >= 1; got workers={workers}, "
                           f"retries={retries}, pack={pack}")
        self.workers, self.retries, self.backoff_s = workers, retries, backoff_s
        self.lease_s, self.pack, self.poll_s = lease_s, pack, poll_s

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


def plan_targets(cfg, stage: str = "evaluate", only: list[str] | None = None):
    """(runs, the steps to run up to `stage` for the chosen runs, in dependency order)."""
    if stage not in STAGES:
        raise BadValue(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
    runs, _ = spec_lib.expand(cfg)
    if only:
        unknown = sorted(set(only) - {r.name for r in runs})
        if unknown:
            raise BadValue(f"unknown runs {unknown}; runs of {cfg.study}: {', '.join(r.name for r in runs)}")
    selected = [r for r in runs if not only or r.name in only]
    return runs, spec_lib.topological([r.steps[kind] for r in selected for kind in STAGES[stage]])


def run_study(cfg: ml_collections.ConfigDict, root: str | Path = "runs", *, stage: str = "evaluate",
              only: list[str] | None = None, report: bool = True, echo=print,
              options: Options | None = None) -> dict:
    """Run every step the study needs up to `stage` that is not finished yet.

    `only` restricts the work to the named runs. Returns {run name: evaluation result} for every
    run whose evaluation is finished, and writes the study report from them.
    """
    options = options or Options()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    runs, steps = plan_targets(cfg, stage, only)
    _check_imported_paths(cfg, steps)
    for step in steps:  # a damaged finished output stops the study before anything runs
        if is_done(root, step):
            read_result(output_dir(root, step))
    with Registry(root / REGISTRY_FILE) as registry:
        register(registry, cfg, runs, steps)
        for step in steps:  # outputs finished by an earlier version of the registry, or copied in
            if is_done(root, step) and registry.status(step.hash) != "done":
                registry.finish(step, output_dir(root, step))
        before = {h: r["status"] for h, r in registry.statuses([s.hash for s in steps]).items()}

    t0 = time.perf_counter()
    if options.workers == 1:
        work(cfg, root, [s.hash for s in steps], options, echo=echo)
    else:
        _run_workers(cfg, root, steps, options, echo)
    with Registry(root / REGISTRY_FILE) as registry:
        after = registry.statuses([s.hash for s in steps])
    failed = [h for h, r in after.items() if r["status"] != "done"]
    ran = sum(1 for h, r in after.items() if r["status"] == "done" and before.get(h) != "done")
    reused = sum(1 for h in before if before[h] == "done")

    results = collect(cfg, root, runs)
    echo(f"{cfg.study}: {ran} steps run, {reused} reused, {len(failed)} failed "
         f"({time.perf_counter() - t0:.1f}s)")
    if report and results:
        from visual_priors.analysis.report import write_report
        path = write_report(list(results.values()), root / cfg.study, study=cfg.study)
        echo(f"report: {path}")
    if failed:
        raise StudyFailed(f"{len(failed)} steps failed; `visual-priors suite status` shows their errors")
    return results


def register(registry: Registry, cfg, runs, steps) -> None:
    """The steps under every study whose runs need them: a composed study's steps also under the
    sub-study of each run (so `suite status --study` finds a shared step under both)."""
    wanted = {s.hash for s in steps}
    entries = []
    for run in runs:
        for step in spec_lib.topological([run.steps["evaluate"]]):
            if step.hash in wanted:
                entries.extend((study, step, run.name) for study in {cfg.study, run.study or cfg.study})
    registry.register_many(entries)


def _check_imported_paths(cfg, steps) -> None:
    """Planning allows an imported encoder without its checkpoint; running does not."""
    if any(isinstance(s.unit, ImportedEncoder) and not s.unit.checkpoint["path"] for s in steps):
        # The runs' encoders and the alignment references (eval.alignment.encoders) alike.
        used = sorted({e for g in studies_lib.grids(cfg) for e in g.encoders}
                      | set(cfg.eval.alignment.encoders))
        stages_lib.validate_encoders(used, cfg.imported_encoders, require_paths=True)


# ---------------------------------------------------------------- one worker


def work(cfg, root: Path, targets: list[str], options: Options, *, echo=print,
         worker: str | None = None) -> None:
    """Claim and run ready steps among `targets` until none is left to run: the step that heads
    the most work left first (`spec.longest_path_first`), unless another worker is compiling
    its programs."""
    root = Path(root)
    _enable_compilation_cache(root)
    worker = worker or worker_id()
    runs, all_steps = spec_lib.expand(cfg)
    by_hash = {s.hash: s for s in all_steps}
    owner = {}
    for run in runs:
        for step in spec_lib.topological([run.steps["evaluate"]]):
            owner.setdefault(step.hash, run.name)
    index = {h: i for i, h in enumerate(targets)}
    claim_order = [s.hash for s in spec_lib.longest_path_first([by_hash[h] for h in targets])]
    accept = _packing(by_hash) if options.pack > 1 else None
    # Packed steps are shared out between workers by the claim itself.
    program = {h: None if accept and by_hash[h].unit.pack_key(by_hash[h]) is not None else program_key(by_hash[h])
               for h in targets}
    with Registry(root / REGISTRY_FILE) as registry:
        while True:
            rows = registry.statuses(targets)
            open_ = claim_candidates(claim_order, rows, program, worker)
            claimed = registry.claim(open_, worker, lease_s=options.lease_s, max_attempts=options.max_attempts,
                                     limit=options.pack, accept=accept, spread=options.workers)
            if claimed:
                group = [by_hash[h] for h in claimed]
                labels = [f"[{index[h] + 1}/{len(targets)}] {by_hash[h].name}" for h in claimed]
                _run_group(group, labels, root, registry, worker, options, owner, echo)
                continue
            if _settled(registry.statuses(open_), options.max_attempts):
                return
            time.sleep(options.poll_s)


def claim_candidates(order: list[str], rows: dict, program: dict, worker: str) -> list[str]:
    """The steps not done yet, in claim order, except that a step whose programs (`program`:
    hash -> key, None for none) another worker is compiling now (it runs the first step of
    that key, none being done) comes after every other: run after that one, it reads them from
    the compilation cache instead of compiling them a second time at the same moment."""
    done = {program[h] for h, r in rows.items() if r["status"] == "done"}
    compiling = {program[h] for h, r in rows.items()
                 if r["status"] == "running" and r["worker"] != worker and program[h] not in done}
    return sorted((h for h in order if rows[h]["status"] != "done"),
                  key=lambda h: program[h] is not None and program[h] in compiling)


def program_key(step) -> tuple | None:
    """Steps that compile the same programs: one kind of step at one LLM scale (None for the
    steps that are not at a scale)."""
    pretrain = [step] if step.kind == "pretrain" else step.inputs_of("pretrain")
    return (step.kind, pretrain[0].unit.scale) if pretrain else None


def _settled(rows: dict, max_attempts: int) -> bool:
    """Nothing left that a worker could ever run: every step done or failed for good."""
    return all(r["status"] == "done" or (r["status"] == "failed" and r["attempts"] >= max_attempts)
               for r in rows.values())


def _packing(by_hash):
    keys = {}  # each step's pack key, computed once: a claim asks for every ready and running step's

    def key(h):
        if h not in keys:
            keys[h] = by_hash[h].unit.pack_key(by_hash[h])
        return keys[h]

    def accept(h, taken):
        return not taken or (key(taken[0]) is not None and key(h) == key(taken[0]))
    return accept


def _run_group(group, labels, root, registry, worker, options, owner, echo) -> None:
    for label, step in zip(labels, group):
        echo(f"{label} {step.unit.describe(step, owner.get(step.hash, ''))}".rstrip())
    partials = [partial_dir(root, s) for s in group]
    for step, partial in zip(group, partials):
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "spec.json").write_text(json.dumps(step.spec(), indent=1, sort_keys=True))
    heartbeat = _Heartbeat(registry.path, [s.hash for s in group], worker, options.lease_s)
    t_step = time.perf_counter()
    try:
        with _step_log(partials), CompileMeter() as compiling:
            results = _run_steps(group, partials, root)
    except (Preempted, KeyboardInterrupt) as err:  # stop; the partial steps resume on a rerun
        for step in group:
            registry.release(step, worker, f"interrupted: {err or 'KeyboardInterrupt'}")
        echo(f"{labels[0]} interrupted; run the same command again to resume")
        raise
    except Exception as err:  # record, keep going with independent steps
        error = "".join(traceback.format_exception(err))[-4000:]
        for label, step, partial in zip(labels, group, partials):
            tail = _tail(partial / LOG_FILE)
            registry.fail(step, error, log_tail=tail, backoff_s=options.backoff_s, worker=worker)
            echo(f"{label} FAILED: {type(err).__name__}: {err}")
            if tail.strip():
                echo("    log tail:\n" + "\n".join(f"    | {line}" for line in tail.splitlines()[-8:]))
        return
    finally:
        heartbeat.stop()
    seconds, compile_s = time.perf_counter() - t_step, compiling.seconds
    for label, step, partial, result in zip(labels, group, partials, results):
        result = {"step": step.name, "seconds": seconds, "compile_seconds": compile_s,
                  "compile_cache_hits": compiling.cache_hits, **result}
        (partial / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True, default=float))
        final = output_dir(root, step)
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        if not registry.finish(step, final, worker=worker, compile_s=compile_s):
            log.warning("%s finished after its lease passed to another worker", step.name)
        echo(f"{label} done in {seconds:.1f}s" + (f" (packed with {len(group) - 1} more)" if len(group) > 1 else ""))
        if "requested_shares" in result:  # what the run actually read, against what it asked for
            drawn = ", ".join(f"{name} {100 * result['component_shares'][name]:.1f}% "
                              f"(asked {100 * share:.1f}%)"
                              for name, share in result["requested_shares"].items())
            echo(f"    drew {result['tokens']:,} tokens: {drawn}")


def _run_steps(group, partials, root) -> list[dict]:
    def locate(s):
        return output_dir(root, s)

    if len(group) == 1:
        return [group[0].run(partials[0], locate)]
    from visual_priors.suite.packed_steps import run_pretrain_packed
    return run_pretrain_packed(group, partials, locate)


class _Heartbeat:
    """Renews the leases of the steps a worker runs, from a thread of its own (its own
    connection: SQLite connections stay in the thread that made them)."""

    def __init__(self, path: Path, hashes: list[str], worker: str, lease_s: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(path, hashes, worker, lease_s), daemon=True)
        self._thread.start()

    def _beat(self, path, hashes, worker, lease_s) -> None:
        with Registry(path) as registry:
            while not self._stop.wait(lease_s / 3):
                if not registry.renew(hashes, worker, lease_s):
                    log.warning("lost the lease of %s to another worker", ", ".join(hashes))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _step_log(partials: list[Path]):
    """Everything logged at INFO and above while the step runs goes to its partial directory's
    log.txt; what already logged (the console) keeps its own level."""
    handler = logging.FileHandler(partials[0] / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger()
    level = root_logger.level
    quiet = [h for h in root_logger.handlers if h.level == logging.NOTSET]
    for h in quiet:
        h.setLevel(level)
    root_logger.addHandler(handler)
    root_logger.setLevel(min(level or logging.WARNING, logging.INFO))
    for extra in partials[1:]:
        (extra / LOG_FILE).unlink(missing_ok=True)
        (extra / LOG_FILE).symlink_to(partials[0] / LOG_FILE)
    try:
        yield
    finally:
        root_logger.removeHandler(handler)
        handler.close()
        root_logger.setLevel(level)
        for h in quiet:
            h.setLevel(logging.NOTSET)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_one(cfg, root: str | Path, name: str, *, echo=print) -> dict:
    """Run exactly one step (a work unit of a cluster launch); its inputs must be finished."""
    root = Path(root)
    runs, steps = spec_lib.expand(cfg)
    step = next((s for s in steps if s.name == name), None)
    if step is None:
        raise BadValue(f"{cfg.study} has no step {name!r}; `visual-priors suite plan` lists them")
    missing = [d.name for d in step.inputs if not is_done(root, d)]
    if missing:
        raise BadValue(f"step {name} needs unfinished inputs: {', '.join(missing)}")
    with Registry(root / REGISTRY_FILE) as registry:
        register(registry, cfg, runs, [step])
        if not is_done(root, step):
            registry.reset([step.hash])
            worker = worker_id()
            registry.claim([step.hash], worker, lease_s=Options().lease_s, max_attempts=1)
            owner = {step.hash: ""}
            _run_group([step], [step.name], root, registry, worker, Options(retries=0), owner, echo)
        done = registry.status(step.hash) == "done"
    if not done:
        raise StudyFailed(f"step {name} failed; `visual-priors suite status` shows its error")
    return read_result(output_dir(root, step))


# ---------------------------------------------------------------- several workers


def _run_workers(cfg, root: Path, steps, options: Options, echo) -> None:
    """N worker processes, each pinned to its share of the devices, with a progress bar here."""
    ctx = mp.get_context("spawn")
    os.environ.update(host_memory.child_env())  # read by the workers' C library when they start
    logs = root / ".workers"
    logs.mkdir(exist_ok=True)
    slices = device_slices(options.workers)
    targets = [s.hash for s in steps]
    procs = [ctx.Process(target=_worker_main, args=(cfg, str(root), targets, options, i, slices[i],
                                                     str(logs / f"worker-{i}.log")), daemon=False)
             for i in range(options.workers)]
    for p in procs:
        p.start()
    # A SIGTERM or Ctrl-C here reaches the workers: each checkpoints and gives its step back.
    stop = []

    def forward(signum, frame):
        stop.append(signum)
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    names = {s.hash: s.name for s in steps}
    seen: dict[str, str] = {}
    try:
        with (Registry(root / REGISTRY_FILE) as registry,
              tqdm(total=len(steps), desc=f"{cfg.study} ({options.workers} workers)", dynamic_ncols=True) as bar):
            while True:
                alive = any(p.is_alive() for p in procs)
                rows = registry.statuses(targets)
                for h, r in rows.items():
                    state = (r["status"], r["attempts"])
                    if seen.get(h) == state:
                        continue
                    if r["status"] == "done" and seen.get(h, ("",))[0] != "done":
                        bar.update(1)
                        if h in seen:  # finished during this run
                            bar.write(f"{names[h]} done in {(r['ended'] or 0) - (r['started'] or 0):.1f}s")
                    elif r["status"] == "failed" and h in seen:
                        last = (r["error"] or "").strip().splitlines()[-1:] or [""]
                        bar.write(f"{names[h]} FAILED (attempt {r['attempts']}): {last[0]}")
                        for line in (r["log_tail"] or "").splitlines()[-8:]:
                            bar.write(f"    | {line}")
                    seen[h] = state
                if not alive:
                    break
                time.sleep(options.poll_s)
    finally:
        for p in procs:
            p.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(stop[0]).name}")
    crashed = [i for i, p in enumerate(procs) if p.exitcode not in (0, None)]
    if crashed:
        echo(f"workers {crashed} exited abnormally; their logs are in {logs}")


def _worker_main(cfg, root: str, targets, options: Options, index: int, devices: dict, log_path: str) -> None:
    os.environ.update(devices.get("env", {}))
    if devices.get("cpus"):
        os.sched_setaffinity(0, devices["cpus"])
    # Outside training (whose loop checkpoints first) a SIGTERM interrupts at once; either way
    # the worker gives its step back instead of leaving it to a lease that must expire.
    signal.signal(signal.SIGTERM, _interrupt)
    streams = sys.stdout, sys.stderr
    with open(log_path, "a", buffering=1) as out:
        sys.stdout = sys.stderr = out
        logging.basicConfig(stream=out, level=logging.INFO, force=True)
        try:
            work(cfg, Path(root), targets, options, echo=lambda msg: print(msg, file=out, flush=True),
                 worker=f"{worker_id()}/{index}")
        except (Preempted, KeyboardInterrupt):  # its step is given back; the study resumes on a rerun
            print("worker stopped by a signal", file=out)
            sys.exit(130)
        finally:
            sys.stdout, sys.stderr = streams


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def device_slices(workers: int) -> list[dict]:
    """Each worker's devices: its GPUs (CUDA_VISIBLE_DEVICES) when this host has NVIDIA GPUs,
    else its CPU cores. Found without starting JAX here, so no worker's memory is taken."""
    gpus = _nvidia_gpus()
    if gpus:
        per = max(1, len(gpus) // workers)
        return [{"env": {"CUDA_VISIBLE_DEVICES": ",".join(gpus[(i * per) % len(gpus):][:per])}}
                for i in range(workers)]
    cpus = sorted(os.sched_getaffinity(0))
    per = max(1, len(cpus) // workers)
    return [{"cpus": cpus[(i * per) % len(cpus):][:per]} for i in range(workers)]


def _nvidia_gpus() -> list[str]:
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [d for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def _enable_compilation_cache(root: Path) -> None:
    """Reuse compiled programs across processes: same-shape runs compile once per machine."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str((root / ".jax_cache").absolute()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# ---------------------------------------------------------------- results


def collect(cfg, root: Path, runs=None) -> dict[str, dict]:
    """Evaluation results of the study's finished runs, in the analysis schema."""
    if runs is None:
        runs, _ = spec_lib.expand(cfg)
    results = {}
    for run in runs:
        step = run.steps["evaluate"]
        if not is_done(root, step):
            continue
        res = read_result(output_dir(root, step))
        encoder_step = step.input("features").input("encoder")
        probe = None
        if is_done(root, encoder_step):
            probe = read_result(output_dir(root, encoder_step)).get("probe_accuracy")
        # Curves are fitted per series: the text mixture, split further by whatever else the
        # run's grid varies (encoder, SFT set), so runs that differ in those are never pooled.
        results[run.name] = {"run": run.name, "study": run.study or cfg.study, "scale": run.scale,
                             "token_budget": run.tokens, "mixture": run.series or run.mixture,
                             "text_mixture": run.mixture, "encoder": run.encoder,
                             "encoder_probe": probe, "sft_set": run.sft_set, "seed": run.seed,
                             "condition": run.condition or run.name, **res}
        # The LLM's alignment with the reference encoders (PRH), once its step has finished.
        alignment_step = run.steps.get("alignment")
        if alignment_step is not None and is_done(root, alignment_step):
            results[run.name]["alignment"] = read_result(output_dir(root, alignment_step))
    return results
