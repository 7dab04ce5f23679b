"""Render a study's unfinished steps as cluster jobs: Slurm batch scripts or GKE JobSets.

    python launch/cluster.py slurm --config=experiments/quickstart.py:paper --root=/shared/runs \
        --out=jobs/quickstart --gpu=h100 --gpus_per_node=8 --nodes=4 --partition=a3 --account=lab
    python launch/cluster.py gke --config=experiments/quickstart.py:paper --root=gs://bucket/runs \
        --out=jobs/quickstart --image=us-docker.pkg.dev/project/repo/visual-priors --tpu=v5p-128
    bash jobs/quickstart/submit.sh

Each unfinished step gets one job file (`<prefix>-<step>.sbatch` or `.yaml`, from
`launch/templates/`) and `submit.sh` starts them in dependency order:

- Slurm: `submit.sh` submits every job at once, each with `--dependency=afterok:` on its inputs'
  job ids and `--kill-on-invalid-dep=yes`, so Slurm itself releases a step when its inputs
  succeed and cancels it when one fails; the script returns immediately.
- GKE: Kubernetes has no dependencies between JobSets. Of the two ways round that, labelled
  waves (apply every step of depth d once every JobSet of depth d-1 completed) and an ordered
  submission script, this renders the script: it follows the dependency graph itself, applying
  each JobSet as soon as its own inputs completed. Waves would hold every step back for the
  slowest step of the previous wave, e.g. the smallest model's alignment for the largest
  model's pre-training, which at paper scale is days of an idle slice. The price is that
  `submit.sh` must keep running (tmux, or a small pod with kubectl); it polls each running
  JobSet's `status.terminalState`. Every JobSet still carries study/kind/step labels, for
  `kubectl get jobsets -l visual-priors/study=...`.

Multi-host start-up: a TPU slice runs one pod per host with `--distributed auto` (GKE sets
TPU_WORKER_ID and TPU_WORKER_HOSTNAMES, which JAX reads); GPU nodes get `--coordinator-address`,
`--num-processes` and `--process-id` from the scheduler's environment (Slurm: the job's first
node and SLURM_PROCID; GKE: pod 0's DNS name and JOB_COMPLETION_INDEX).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from absl import app, flags

import study_plan
from study_plan import Raw, Rendezvous, Unit

TEMPLATES = Path(__file__).resolve().parent / "templates"
GKE_TPUS = {"v4": "tpu-v4-podslice", "v5p": "tpu-v5p-slice", "v5e": "tpu-v5-lite-podslice",
            "v6e": "tpu-v6e-slice"}
GKE_GPUS = {"h100": "nvidia-h100-80gb", "h100_mega": "nvidia-h100-mega-80gb", "h200": "nvidia-h200-141gb",
            "b200": "nvidia-b200", "a100": "nvidia-tesla-a100", "a100_80gib": "nvidia-a100-80gb",
            "l4": "nvidia-l4"}
# Pods have their own network namespace, so one fixed port serves every GPU JobSet.
GKE_COORDINATOR_PORT = 8476
SLURM_RENDEZVOUS = Rendezvous(Raw('"$COORDINATOR_HOST:$COORDINATOR_PORT"'), Raw('"$SLURM_NTASKS"'),
                              Raw('"$SLURM_PROCID"'))
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

flags.DEFINE_string("config", None, "study file with profile, e.g. experiments/quickstart.py:paper")
flags.DEFINE_multi_string("set", [], "config override key=value, passed to every step (repeatable)")
flags.DEFINE_string("root", None, "where step outputs live (a path every machine sees, or gs://...)")
flags.DEFINE_string("out", None, "folder for the rendered job files and submit.sh")
flags.DEFINE_string("tpu", None, "TPU slice of the accelerator steps, e.g. v5p-128")
flags.DEFINE_string("gpu", None, "GPU type of the accelerator steps, e.g. h100")
flags.DEFINE_integer("gpus_per_node", 8, "GPUs per node (with --gpu)")
flags.DEFINE_integer("nodes", 1, "nodes per accelerator step (with --gpu)")
flags.DEFINE_integer("cpus", 8, "CPUs of a data step")
flags.DEFINE_integer("ram_gib", 32, "memory of a data step, GiB")
flags.DEFINE_string("program", "visual-priors", "the visual-priors executable where steps run")
flags.DEFINE_string("image", None, "container image with the project installed (GKE)")
flags.DEFINE_string("namespace", "default", "Kubernetes namespace (GKE)")
flags.DEFINE_integer("restarts", 2, "times GKE restarts a failed JobSet; training resumes from its checkpoint")
flags.DEFINE_string("partition", None, "Slurm partition")
flags.DEFINE_string("account", None, "Slurm account")
flags.DEFINE_string("time", None, "Slurm time limit per step, e.g. 2-00:00:00")
flags.DEFINE_string("setup", "", "shell lines each Slurm job runs first, e.g. 'source venv/bin/activate'")
flags.DEFINE_string("workdir", None, "Slurm jobs' working directory, where --config resolves (default: here)")
flags.DEFINE_string("prefix", "vp", "prefix of job names")
flags.DEFINE_boolean("skip_finished", True, "leave out steps already finished under --root")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Options:
    """How jobs are written, whatever the study."""

    program: str = "visual-priors"
    cpus: int = 8
    ram_gib: int = 32
    prefix: str = "vp"
    image: str | None = None
    namespace: str = "default"
    restarts: int = 2
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    setup: str = ""
    workdir: str = "."

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9-]*", self.prefix):
            raise ValueError(f"job name prefix {self.prefix!r} must be lower-case letters, digits "
                             f"and '-', starting with a letter (Kubernetes names)")


def job_name(unit: Unit, opts: Options) -> str:
    """A DNS-1035 label: JobSet and pod names are built from it."""
    return f"{opts.prefix}-{unit.step}".replace("_", "-").lower()


def fill(template: str, values: Mapping[str, object]) -> str:
    """`{{field}}` replaced by values[field] (already escaped for the file's language); a field
    without a value, or a value without a field, is an error."""
    fields = set(re.findall(r"\{\{(\w+)\}\}", template))
    if fields != set(values):
        raise KeyError(f"template fields {sorted(fields)} do not match values {sorted(values)}")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: str(values[m.group(1)]), template)


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text()


def _check_study(study: str) -> None:
    # Written unquoted into job names' comments, labels and scripts.
    if not _IDENTIFIER.fullmatch(study):
        raise ValueError(f"study name {study!r} must be letters, digits, '_', '.' or '-'")


# --- Slurm -------------------------------------------------------------------------------------

def render_slurm(units: Sequence[Unit], study: str, out: Path, opts: Options) -> dict[str, str]:
    """{file name: text}: one batch script per unit and submit.sh chaining them."""
    _check_study(study)
    log_dir = Path(out).resolve() / "logs"
    names = {u.step: job_name(u, opts) for u in units}
    files = {f"{names[u.step]}.sbatch": _slurm_job(u, study, log_dir, opts) for u in units}
    lines = [f"job[{names[u.step]}]=$(submit {names[u.step]}.sbatch"
             + "".join(f' "${{job[{names[n]}]}}"' for n in u.needs) + ")" for u in units]
    files["submit.sh"] = fill(_template("slurm_submit.sh"), {
        "study": study, "count": len(units), "log_dir": shlex.quote(str(log_dir)),
        "submissions": "\n".join(lines)})
    return files


def _slurm_job(unit: Unit, study: str, log_dir: Path, opts: Options) -> str:
    acc = unit.accelerator
    if acc is not None and acc.family != "gpu":
        raise ValueError("Slurm runs accelerator steps on GPUs (--gpu); launch TPU slices on GKE")
    directives = [f"--{key}={value}" for key, value in
                  (("partition", opts.partition), ("account", opts.account), ("time", opts.time)) if value]
    directives += ([f"--gpus-per-node={acc.per_host}", "--exclusive"] if acc else [f"--mem={opts.ram_gib}G"])
    words = study_plan.command(unit, opts.program, SLURM_RENDEZVOUS)
    return fill(_template("slurm_step.sbatch"), {
        "job_name": job_name(unit, opts), "nodes": unit.hosts, "cpus": opts.cpus,
        "workdir": shlex.quote(str(Path(opts.workdir).resolve())), "log_dir": shlex.quote(str(log_dir)),
        "directives": "\n".join(f"#SBATCH {d}" for d in directives), "step": unit.step, "study": study,
        "setup": opts.setup, "command": shlex.quote("exec " + study_plan.shell_join(words))})


# --- GKE ---------------------------------------------------------------------------------------

def render_gke(units: Sequence[Unit], study: str, opts: Options) -> dict[str, str]:
    """{file name: text}: one JobSet per unit and submit.sh, which applies them in order."""
    _check_study(study)
    if not opts.image:
        raise ValueError("GKE jobs need --image, a container image with the project installed")
    names = {u.step: job_name(u, opts) for u in units}
    files = {f"{names[u.step]}.yaml": _jobset(u, study, opts) for u in units}
    runs = [" ".join(["run", names[u.step], *(names[n] for n in u.needs), "&"]) for u in units]
    files["submit.sh"] = fill(_template("gke_submit.sh"), {
        "study": study, "count": len(units), "namespace": shlex.quote(opts.namespace),
        "runs": "\n".join(runs)})
    return files


def _jobset(unit: Unit, study: str, opts: Options) -> str:
    name, acc = job_name(unit, opts), unit.accelerator
    labels = {"app.kubernetes.io/part-of": "visual-priors", "visual-priors/study": study,
              "visual-priors/kind": unit.kind, "visual-priors/step": unit.step}
    values = {"name": name, "namespace": json.dumps(opts.namespace), "labels": json.dumps(labels),
              "image": json.dumps(opts.image), "restarts": opts.restarts, "step": unit.step, "study": study,
              "command": json.dumps(_container_command(unit, name, opts))}
    if acc is None:
        return fill(_template("gke_cpu.yaml"), {**values, "cpus": json.dumps(str(opts.cpus)),
                                                "memory": json.dumps(f"{opts.ram_gib}Gi")})
    sizes = {"hosts": acc.hosts, "per_host": acc.per_host}
    if acc.family == "tpu":
        return fill(_template("gke_tpu.yaml"), {**values, **sizes, "accelerator": GKE_TPUS[acc.type],
                                                "topology": acc.topology})
    if acc.type not in GKE_GPUS:
        raise ValueError(f"no GKE accelerator label known for GPU {acc.type!r}; known: {', '.join(GKE_GPUS)}")
    return fill(_template("gke_gpu.yaml"), {**values, **sizes, "accelerator": GKE_GPUS[acc.type],
                                            "coordinator": _gke_coordinator(name)})


def _gke_coordinator(name: str) -> str:
    # JobSet names pod i of its one job "<jobset>-workers-0-<i>", under the subdomain <jobset>.
    return f"{name}-workers-0-0.{name}:{GKE_COORDINATOR_PORT}"


def _container_command(unit: Unit, name: str, opts: Options) -> list[str]:
    acc = unit.accelerator
    if acc is None or acc.family != "gpu" or not acc.multihost:
        return study_plan.command(unit, opts.program)
    rendezvous = Rendezvous(_gke_coordinator(name), str(acc.hosts), Raw('"$JOB_COMPLETION_INDEX"'))
    return ["bash", "-c", "exec " + study_plan.shell_join(study_plan.command(unit, opts.program, rendezvous))]


# --- from flags --------------------------------------------------------------------------------

def accelerator_from_flags() -> study_plan.Accelerator | None:
    if FLAGS.tpu and FLAGS.gpu:
        raise app.UsageError("give --tpu or --gpu, not both")
    if FLAGS.tpu:
        return study_plan.tpu(FLAGS.tpu)
    return study_plan.gpu(FLAGS.gpu, FLAGS.gpus_per_node, FLAGS.nodes) if FLAGS.gpu else None


def options_from_flags() -> Options:
    return Options(program=FLAGS.program, cpus=FLAGS.cpus, ram_gib=FLAGS.ram_gib, prefix=FLAGS.prefix,
                   image=FLAGS.image, namespace=FLAGS.namespace, restarts=FLAGS.restarts,
                   partition=FLAGS.partition, account=FLAGS.account, time=FLAGS.time, setup=FLAGS.setup,
                   workdir=FLAGS.workdir or os.getcwd())


def plan_from_flags() -> tuple[str, list[Unit]]:
    """The study's name and its units, from --config, --set, --root and the accelerator flags."""
    for name in ("config", "root"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
    cfg, steps = study_plan.load(FLAGS.config, FLAGS.set)
    finished = study_plan.finished_under(FLAGS.root) if FLAGS.skip_finished else (lambda step: False)
    return cfg.study, study_plan.build(steps, config=FLAGS.config, root=FLAGS.root, overrides=FLAGS.set,
                                       accelerator=accelerator_from_flags(), finished=finished)


def render(platform: str, units: Sequence[Unit], study: str, out: Path, opts: Options) -> dict[str, str]:
    if platform == "slurm":
        return render_slurm(units, study, out, opts)
    if platform == "gke":
        return render_gke(units, study, opts)
    raise app.UsageError(f"unknown cluster {platform!r}: slurm or gke")


def write(files: Mapping[str, str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    (out / "submit.sh").chmod(0o755)


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2:
        raise app.UsageError("usage: cluster.py {slurm,gke} --config=... --root=... --out=... [flags]")
    if not FLAGS.out:
        raise app.UsageError("--out is required")
    study, units = plan_from_flags()
    out = Path(FLAGS.out)
    write(render(argv[1], units, study, out, options_from_flags()), out)
    print(f"{len(units)} unfinished steps of {study}: job files and submit.sh in {out}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
