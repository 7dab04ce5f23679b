#!/usr/bin/env bash
# Submits the {{count}} unfinished steps of study {{study}} to Slurm at once: each job waits
# (--dependency=afterok) for its inputs' jobs, and is cancelled if one of them fails.
set -euo pipefail
cd "$(dirname "$0")"
STUDY={{study}}
mkdir -p {{log_dir}}

# submit FILE [JOB_ID ...]: submits FILE after the given jobs succeed; prints its job id.
submit() {
  local file=$1 id
  shift
  local after=()
  if (($#)); then
    after=(--dependency="afterok:$(IFS=:; echo "$*")")
  fi
  id=$(sbatch --parsable --kill-on-invalid-dep=yes ${after[@]+"${after[@]}"} "$file") || return
  echo "${id%%;*}"
}

declare -A job
{{submissions}}
echo "study $STUDY: submitted {{count}} jobs"
