"""launch/: the work-unit plan of a study, the XManager launch script on its local backend, and
the Slurm / GKE job files with their submission scripts (run against stand-in sbatch/kubectl)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "launch"))

import cluster  # noqa: E402
import study_plan  # noqa: E402

CONFIG = "experiments/quickstart.py:tiny"
OPTS = cluster.Options(image="registry.example/visual-priors:1", partition="a3", account="lab",
                       workdir=str(REPO))


@pytest.fixture(scope="module")
def steps():
    return study_plan.load(str(REPO / CONFIG))[1]


def units(steps, accelerator=None, finished=()):
    return study_plan.build(steps, config=CONFIG, root="gs://bucket/runs", overrides=["seed=7"],
                            accelerator=accelerator, finished=lambda s: s.name in finished)


def test_one_unit_per_step_with_its_inputs_as_dependencies(steps):
    plan = units(steps)
    assert [u.step for u in plan] == [s.name for s in steps]
    for unit, step in zip(plan, steps):
        assert set(unit.needs) == {i.name for i in step.inputs}
        assert unit.argv == ("suite", "step", CONFIG, step.name, "--root", "gs://bucket/runs", "--set", "seed=7")
    order = {u.step: i for i, u in enumerate(plan)}
    assert all(order[n] < order[u.step] for u in plan for n in u.needs)


def test_finished_steps_drop_out_of_the_plan_and_of_dependencies(steps):
    tokenizer = next(s for s in steps if s.kind == "tokenizer")
    plan = units(steps, finished={tokenizer.name})
    assert len(plan) == len(steps) - 1
    assert all(tokenizer.name not in u.needs for u in plan)
    shards = next(u for u in plan if u.kind == "shards")
    assert shards.needs == ()


def test_accelerators_only_on_accelerator_kinds_and_multihost_tpu_starts_with_distributed_auto(steps):
    plan = units(steps, accelerator=study_plan.tpu("v5p-128"))
    assert {u.kind for u in plan if u.accelerator is None} == set(study_plan.CPU_KINDS)
    assert {u.kind for u in plan if u.accelerator} == {s.kind for s in steps} - study_plan.CPU_KINDS
    for unit in plan:
        words = study_plan.command(unit)
        head = words[:words.index("suite")]
        assert head == (["visual-priors", "--distributed", "auto"] if unit.accelerator else ["visual-priors"])


@pytest.mark.parametrize("name, topology, hosts, per_host", [
    ("v5p-8", "2x2x1", 1, 4), ("v5p-128", "4x4x4", 16, 4), ("v4-32", "2x2x4", 4, 4),
    ("v5litepod-8", "2x4", 1, 8), ("v5e-16", "4x4", 4, 4), ("v6e-256", "16x16", 64, 4)])
def test_tpu_slices(name, topology, hosts, per_host):
    acc = study_plan.tpu(name)
    assert (acc.topology, acc.hosts, acc.per_host) == (topology, hosts, per_host)


@pytest.mark.parametrize("name", ["v5p-6", "v9-8", "h100", "v5p-128x"])
def test_unknown_tpu_slices_fail(name):
    with pytest.raises(ValueError):
        study_plan.tpu(name)


def test_multinode_gpu_steps_take_the_launchers_rendezvous(steps):
    pretrain = next(u for u in units(steps, accelerator=study_plan.gpu("h100", 8, 4)) if u.kind == "pretrain")
    with pytest.raises(ValueError, match="4 GPU nodes"):
        study_plan.command(pretrain)
    line = study_plan.shell_join(study_plan.command(pretrain, rendezvous=cluster.SLURM_RENDEZVOUS))
    assert line.startswith('visual-priors --coordinator-address "$COORDINATOR_HOST:$COORDINATOR_PORT" '
                           '--num-processes "$SLURM_NTASKS" --process-id "$SLURM_PROCID" suite step ')


# --- Slurm ---------------------------------------------------------------------------------------

FAKE_SBATCH = """#!/usr/bin/env bash
# Records "<job id> <file> <dependency>" and answers like `sbatch --parsable` on a federation.
id=$(( $(cat "$SBATCH_LOG" 2>/dev/null | wc -l) + 100 ))
dependency=
for arg; do case $arg in --dependency=*) dependency=${arg#--dependency=};; esac; done
echo "$id ${@: -1} $dependency" >> "$SBATCH_LOG"
echo "$id;cluster"
"""


def _tool(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


def test_slurm_jobs_chain_their_inputs_with_afterok(steps, tmp_path):
    plan = units(steps, accelerator=study_plan.gpu("h100", 8, 2))
    out = tmp_path / "jobs"
    cluster.write(cluster.render_slurm(plan, "quickstart", out, OPTS), out)
    for path in out.iterdir():
        subprocess.run(["bash", "-n", str(path)], check=True)
    pretrain = next(u for u in plan if u.kind == "pretrain")
    script = (out / f"{cluster.job_name(pretrain, OPTS)}.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=8" in script
    assert "--process-id \"$SLURM_PROCID\"" in script and "--account=lab" in script
    shards = (out / f"{cluster.job_name(next(u for u in plan if u.kind == 'shards'), OPTS)}.sbatch").read_text()
    assert "--gpus-per-node" not in shards and "--coordinator-address" not in shards

    _tool(tmp_path / "bin", "sbatch", FAKE_SBATCH)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SBATCH_LOG": str(log)}
    subprocess.run(["bash", str(out / "submit.sh")], check=True, env=env, capture_output=True)
    submitted = [line.split(" ") for line in log.read_text().splitlines()]
    ids = {Path(file).stem: job_id for job_id, file, _ in submitted}
    assert list(ids) == [cluster.job_name(u, OPTS) for u in plan]
    for unit, (_, _, dependency) in zip(plan, submitted):
        expected = [ids[cluster.job_name(u, OPTS)] for u in plan if u.step in unit.needs]
        assert sorted(dependency.removeprefix("afterok:").split(":") if dependency else []) == sorted(expected)


def test_slurm_has_no_tpus(steps, tmp_path):
    with pytest.raises(ValueError, match="GKE"):
        cluster.render_slurm(units(steps, accelerator=study_plan.tpu("v5p-16")), "quickstart", tmp_path, OPTS)


# --- GKE -----------------------------------------------------------------------------------------

FAKE_KUBECTL = """#!/usr/bin/env bash
# A cluster where a JobSet ends as soon as it is applied: Failed if it is $KUBE_FAIL.
case $1 in
  apply) name=$(basename "${@: -1}" .yaml); echo "$name" >> "$KUBE_LOG"; touch "$KUBE_STATE/$name" ;;
  get) if [[ -e $KUBE_STATE/$3 ]]; then [[ $3 == "${KUBE_FAIL:-}" ]] && echo Failed || echo Completed; fi ;;
esac
"""


def _kube_env(tmp_path: Path, fail: str = "") -> dict:
    _tool(tmp_path / "bin", "kubectl", FAKE_KUBECTL)
    (tmp_path / "kube").mkdir(exist_ok=True)
    return {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "POLL_SECONDS": "0.02",
            "KUBE_LOG": str(tmp_path / "kube.log"), "KUBE_STATE": str(tmp_path / "kube"), "KUBE_FAIL": fail}


def _gke(plan, tmp_path) -> Path:
    out = tmp_path / "jobs"
    cluster.write(cluster.render_gke(plan, "quickstart", OPTS), out)
    return out


def test_gke_jobsets_parse_and_start_hosts_the_right_way(steps, tmp_path):
    plan = units(steps, accelerator=study_plan.tpu("v5p-128"))
    out = _gke(plan, tmp_path)
    subprocess.run(["bash", "-n", str(out / "submit.sh")], check=True)
    docs = {u.kind: yaml.safe_load((out / f"{cluster.job_name(u, OPTS)}.yaml").read_text()) for u in plan}
    assert all(d["kind"] == "JobSet" for d in docs.values())
    slice_job = docs["pretrain"]["spec"]["replicatedJobs"][0]["template"]["spec"]
    pod = slice_job["template"]["spec"]
    assert slice_job["parallelism"] == slice_job["completions"] == 16
    assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5p-slice",
                                   "cloud.google.com/gke-tpu-topology": "4x4x4"}
    assert pod["containers"][0]["resources"]["limits"] == {"google.com/tpu": 4}
    assert pod["containers"][0]["command"][:4] == ["visual-priors", "--distributed", "auto", "suite"]
    cpu_pod = docs["tokenizer"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu_pod and cpu_pod["containers"][0]["command"][1] == "suite"

    gpu_plan = units(steps, accelerator=study_plan.gpu("h100", 8, 2))
    pretrain = next(u for u in gpu_plan if u.kind == "pretrain")
    doc = yaml.safe_load(cluster.render_gke(gpu_plan, "quickstart", OPTS)[f"{cluster.job_name(pretrain, OPTS)}.yaml"])
    gpu_pod = doc["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    name = doc["metadata"]["name"]
    shell = gpu_pod["containers"][0]["command"][2]
    assert f"--coordinator-address {name}-workers-0-0.{name}:8476 --num-processes 2" in shell
    assert '--process-id "$JOB_COMPLETION_INDEX"' in shell
    assert gpu_pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 8}


def test_gke_submission_follows_dependencies_and_skips_after_a_failure(steps, tmp_path):
    plan = units(steps, accelerator=study_plan.tpu("v5p-128"))
    out = _gke(plan, tmp_path)
    names = {u.step: cluster.job_name(u, OPTS) for u in plan}
    subprocess.run(["bash", str(out / "submit.sh")], check=True, env=_kube_env(tmp_path), capture_output=True)
    applied = (tmp_path / "kube.log").read_text().split()
    assert sorted(applied) == sorted(names.values())
    position = {name: i for i, name in enumerate(applied)}
    assert all(position[names[n]] < position[names[u.step]] for u in plan for n in u.needs)

    failing = next(u for u in plan if u.kind == "pretrain")
    (tmp_path / "kube.log").unlink()
    for marker in (tmp_path / "kube").iterdir():
        marker.unlink()
    run = subprocess.run(["bash", str(out / "submit.sh")], env=_kube_env(tmp_path, names[failing.step]),
                         capture_output=True, text=True)
    assert run.returncode != 0 and f"FAILED {names[failing.step]}" in run.stdout
    applied = set((tmp_path / "kube.log").read_text().split())
    downstream = _downstream(plan, failing.step)
    assert downstream and not applied & {names[s] for s in downstream}
    assert applied == set(names.values()) - {names[s] for s in downstream}


def _downstream(plan, step: str) -> set[str]:
    below: set[str] = set()
    for unit in plan:  # dependency order: inputs come first
        if step in unit.needs or below & set(unit.needs):
            below.add(unit.step)
    return below


# --- XManager ------------------------------------------------------------------------------------

FAKE_STEP = """#!/usr/bin/env bash
# Stands in for `visual-priors ... suite step CONFIG NAME --root ROOT`: fails unless every input
# finished (or when it is $STEP_FAIL), else writes the step's result.json as the suite would.
set -eu
args=("$@")
for i in "${!args[@]}"; do
  case ${args[i]} in step) name=${args[i+2]} ;; --root) root=${args[i+1]} ;; esac
done
echo "$name" >> "$STEP_LOG"
while read -r input; do
  [[ -e $root/$input/result.json ]] || { echo "$name: input $input is unfinished"; exit 1; }
done < "$STEP_INPUTS/$name"
[[ $name != "${STEP_FAIL:-}" ]] || { echo "$name: failing as asked"; exit 1; }
mkdir -p "$root/$name"
echo "{}" > "$root/$name/result.json"
"""


def _xm_launch(tmp_path: Path, flags: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xmanager.cli.cli", "launch", "launch/xm_launch.py", "--",
                           f"--config={CONFIG}", *flags], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**env, "HOME": str(tmp_path)})  # xm_local's database


@pytest.fixture
def fake_step(steps, tmp_path):
    _tool(tmp_path / "bin", "visual-priors", FAKE_STEP)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for s in steps:
        (inputs / s.name).write_text("".join(f"{i.name}\n" for i in s.inputs))
    return {**os.environ, "STEP_INPUTS": str(inputs), "STEP_LOG": str(tmp_path / "steps.log")}


def test_xm_requirements_and_jobs():
    pytest.importorskip("xmanager")
    import xm_launch
    from xmanager import xm

    cpu, tpu, gpu = (study_plan.Unit("s", "k", (), acc, ("suite",)) for acc in
                     (None, study_plan.tpu("v5p-128"), study_plan.gpu("h100", 8, 4)))
    assert xm_launch.requirements(cpu, OPTS).accelerator is None
    req = xm_launch.requirements(tpu, OPTS)
    assert (req.accelerator, req.topology, req.replicas) == (xm.ResourceType.TPU_V5P, xm.Topology("4x4x4"), 1)
    req = xm_launch.requirements(gpu, OPTS)
    assert (req.accelerator, req.topology, req.replicas) == (xm.ResourceType.H100, xm.Topology("8x4"), 4)
    assert xm_launch.job_args(gpu, "gke", Path("/jobs"), OPTS) == ["/jobs/submit.sh", "vp-s"]
    assert xm_launch.job_args(cpu, "slurm", Path("/jobs"), OPTS) == ["--wait", "/jobs/vp-s.sbatch"]


def test_xm_local_backend_runs_each_unfinished_step_after_its_inputs(steps, tmp_path, fake_step):
    """One run: a finished step is left out, every other step runs once its inputs finished
    (the stand-in fails otherwise), and a failed step stops exactly what lies downstream."""
    pytest.importorskip("xmanager")
    tokenizer = next(s for s in steps if s.kind == "tokenizer")
    failing = next(s for s in steps if s.kind == "pretrain")
    (tmp_path / "runs" / tokenizer.name).mkdir(parents=True)
    (tmp_path / "runs" / tokenizer.name / "result.json").write_text("{}")
    run = _xm_launch(tmp_path, [f"--root={tmp_path / 'runs'}", f"--program={tmp_path / 'bin' / 'visual-priors'}",
                                "--local_jobs=4"], {**fake_step, "STEP_FAIL": failing.name})
    downstream = _downstream(units(steps), failing.name)
    assert run.returncode != 0
    assert f"{failing.name}: Process" in run.stderr
    assert f"{len(downstream)} steps were not started" in run.stderr
    ran = (tmp_path / "steps.log").read_text().split()
    assert sorted(ran) == sorted({s.name for s in steps} - {tokenizer.name} - downstream)
    finished = {p.parent.name for p in (tmp_path / "runs").glob("*/result.json")}
    assert finished == {s.name for s in steps} - {failing.name} - downstream


def test_xm_gke_executor_applies_each_jobset_after_its_inputs(steps, tmp_path):
    pytest.importorskip("xmanager")
    run = _xm_launch(tmp_path, ["--root=gs://bucket/runs", "--skip_finished=false", "--executor=gke",
                                "--tpu=v5p-128", f"--image={OPTS.image}", f"--out={tmp_path / 'jobs'}"],
                     _kube_env(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    plan = units(steps)
    names = {u.step: cluster.job_name(u, OPTS) for u in plan}
    applied = (tmp_path / "kube.log").read_text().split()
    position = {name: i for i, name in enumerate(applied)}
    assert sorted(applied) == sorted(names.values())
    assert all(position[names[n]] < position[names[u.step]] for u in plan for n in u.needs)
