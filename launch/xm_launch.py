"""Launch a study's unfinished steps as XManager work units, each after its inputs' units.

    xmanager launch launch/xm_launch.py -- --config=experiments/quickstart.py:tiny --root=runs
    xmanager launch launch/xm_launch.py -- --config=experiments/quickstart.py:paper \
        --root=gs://bucket/runs --executor=gke --tpu=v5p-128 --image=... --out=jobs/quickstart
    xmanager launch launch/xm_launch.py -- --config=experiments/quickstart.py:paper \
        --root=/shared/runs --executor=slurm --gpu=h100 --gpus_per_node=8 --nodes=4 --out=jobs/qs

One xm_local experiment, one work unit per step not finished under --root. A step's work unit
is added once the work units of all its inputs have completed; if one of them failed, the step
and everything downstream of it are not started, while independent branches go on. (Units are
added when ready rather than all up front as job generators waiting for their inputs, because
xm_local launches work units in the order of their ids: each step would be held back until every
step before it in the plan had started.) What a work unit runs:

- --executor=local: the step itself, `visual-priors suite step ...`, as a process on this
  machine (xm.Binary with the xm_local.Local executor). At most --local_jobs steps run at once,
  and one accelerator step at a time: two JAX processes cannot share a TPU, nor a GPU's memory.
  Single-host accelerators only.
- --executor=slurm or gke: the step's job file, rendered into --out by launch/cluster.py, is
  submitted and waited for (`sbatch --wait`; for GKE `submit.sh NAME` applies the JobSet and
  polls it). The cluster starts the hosts: every host of a TPU slice runs the step with
  `--distributed auto`; GPU nodes get the coordinator address, process count and their process
  id from the scheduler's environment. XManager orders the steps and records their outcomes.

Each job's executor carries the step's xm.JobRequirements: cpu and ram for data steps, the TPU
slice as a topology (tpu_v5p='4x4x4') or GPUs per node x nodes (h100='8x4': 4 replicas) for the
others. xm_local runs jobs on this machine whatever those say; they state what the step needs
to a backend that places jobs by them. The open-source backends cannot place these steps
themselves (xm_local's Vertex executor knows TPU v2/v3 only and puts GPUs on n1 machines, its
Kubernetes executor starts single-pod Jobs, XManager on Cloud needs the `xmanager_cloud`
package, which is not on PyPI), hence the cluster executors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from absl import app, flags
from xmanager import xm, xm_local

import cluster
import study_plan
from study_plan import Unit

flags.DEFINE_enum("executor", "local", ("local", "slurm", "gke"),
                  "where steps run: this machine, or Slurm / GKE jobs rendered into --out")
flags.DEFINE_string("title", None, "experiment title (default: the study's name)")
flags.DEFINE_integer("local_jobs", 1, "steps run at once with --executor=local")
FLAGS = flags.FLAGS


def requirements(unit: Unit, opts: cluster.Options) -> xm.JobRequirements:
    acc = unit.accelerator
    if acc is None:
        return xm.JobRequirements(cpu=opts.cpus, ram=opts.ram_gib * xm.GiB)
    resource = f"tpu_{acc.type}" if acc.family == "tpu" else acc.type
    if resource.upper() not in xm.ResourceType.__members__:
        raise app.UsageError(f"XManager has no resource {resource!r}; GPUs: "
                             f"{', '.join(t.name.lower() for t in xm.GpuType)}")
    return xm.JobRequirements({resource: acc.topology})


def job_args(unit: Unit, executor: str, out: Path | None, opts: cluster.Options) -> list[str]:
    """What the work unit's program is given: the step's own arguments, or its job file."""
    if executor == "local":
        return study_plan.command(unit, opts.program)[1:]
    name = cluster.job_name(unit, opts)
    if executor == "slurm":
        return ["--wait", str(out / f"{name}.sbatch")]
    return [str(out / "submit.sh"), name]


def program(executor: str, opts: cluster.Options) -> str:
    """The executable each work unit runs, found on PATH or beside this Python."""
    name = {"local": opts.program, "slurm": "sbatch", "gke": "bash"}[executor]
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        raise app.UsageError(f"{name!r} is not on PATH: the {executor} executor runs it")
    return found


class Slots:
    """Steps this machine runs at once: at most `jobs`, and only one accelerator step."""

    def __init__(self, jobs: int):
        if jobs < 1:
            raise app.UsageError(f"--local_jobs must be at least 1, got {jobs}")
        self._any, self._accelerator = asyncio.Semaphore(jobs), asyncio.Semaphore(1)

    @contextlib.asynccontextmanager
    async def hold(self, unit: Unit):
        async with contextlib.AsyncExitStack() as held:
            await held.enter_async_context(self._any)
            if unit.accelerator:
                await held.enter_async_context(self._accelerator)
            yield


class InputFailed(RuntimeError):
    pass


class StudyFailed(RuntimeError):
    pass


async def run_units(experiment: xm.Experiment, units: Sequence[Unit], jobs: Mapping[str, xm.Job],
                    slots: Slots | None = None) -> dict[str, BaseException | None]:
    """Runs every unit as a work unit once its inputs' work units completed; {step: its error,
    or None when it completed}."""
    done: dict[str, asyncio.Task] = {}

    async def run(unit: Unit) -> None:
        for name in unit.needs:
            try:
                await done[name]
            except Exception as err:
                raise InputFailed(f"{unit.step} was not started: its input {name} did not complete") from err
        async with slots.hold(unit) if slots else contextlib.nullcontext():
            work_unit = await experiment.add(jobs[unit.step])
            await work_unit.wait_until_complete()

    for unit in units:  # dependency order: every input's task exists already
        done[unit.step] = asyncio.create_task(run(unit))
    errors = await asyncio.gather(*done.values(), return_exceptions=True)
    return dict(zip(done, errors))


def build_jobs(units: Sequence[Unit], executable: xm.Executable, executor: str, out: Path | None,
               opts: cluster.Options) -> dict[str, xm.Job]:
    return {u.step: xm.Job(executable, xm_local.Local(requirements=requirements(u, opts)),
                           args=job_args(u, executor, out, opts), name=u.step) for u in units}


def failures(errors: Mapping[str, BaseException | None]) -> str | None:
    """What went wrong, or None when every step completed."""
    failed = [f"  {step}: {err}" for step, err in errors.items()
              if err is not None and not isinstance(err, InputFailed)]
    skipped = sum(isinstance(err, InputFailed) for err in errors.values())
    if not failed and not skipped:
        return None
    return "\n".join([f"{len(failed)} of {len(errors)} steps failed:", *failed,
                      f"{skipped} steps were not started because an input did not complete"])


async def _launch(experiment: xm.Experiment, units: Sequence[Unit], jobs: Mapping[str, xm.Job],
                  slots: Slots | None) -> None:
    async with experiment:
        report = failures(await run_units(experiment, units, jobs, slots))
        if report:
            # Raised inside the context, so that it does not wait again for the failed jobs.
            raise StudyFailed(report)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    study, units = cluster.plan_from_flags()
    opts, executor = cluster.options_from_flags(), FLAGS.executor
    out = Path(FLAGS.out).resolve() if FLAGS.out else None
    if executor == "local":
        if any(u.accelerator and u.accelerator.multihost for u in units):
            raise app.UsageError("--executor=local runs on this machine only: a multi-host "
                                 "accelerator needs --executor=slurm or gke")
    elif out is None:
        raise app.UsageError(f"--executor={executor} needs --out for its job files")
    else:
        cluster.write(cluster.render(executor, units, study, out, opts), out)
    if not units:
        print(f"every step of {study} is finished under {FLAGS.root}", file=sys.stderr)
        return
    experiment = xm_local.create_experiment(experiment_title=FLAGS.title or study)
    [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(),
                                                 path=program(executor, opts))])
    jobs = build_jobs(units, executable, executor, out, opts)
    slots = Slots(FLAGS.local_jobs) if executor == "local" else None
    try:
        asyncio.run(_launch(experiment, units, jobs, slots))
    except StudyFailed as err:
        sys.exit(f"{study}: {err}")


if __name__ == "__main__":
    app.run(main)
