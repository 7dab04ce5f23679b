#!/usr/bin/env bash
# Runs the {{count}} unfinished steps of study {{study}} on GKE, each JobSet applied as soon as
# all of its inputs' JobSets completed (Kubernetes itself has no dependencies between them).
#   bash submit.sh          every step; keep it running (tmux, or a small pod with kubectl)
#   bash submit.sh NAME     one step: apply NAME.yaml and wait for it (exit 0 when it completed)
# A step whose input failed is skipped. After fixing the cause, render again with
# launch/cluster.py (finished steps drop out) and re-run; a failed JobSet is replaced.
set -uo pipefail
cd "$(dirname "$0")"
STUDY={{study}}
NAMESPACE={{namespace}}
POLL=${POLL_SECONDS:-30}

terminal_state() {
  kubectl get jobset "$1" -n "$NAMESPACE" -o jsonpath='{.status.terminalState}' 2>/dev/null
}

# run_one NAME: applies NAME.yaml and waits until the JobSet completes (0) or fails (1).
run_one() {
  local state
  if [[ $(terminal_state "$1") == Failed ]]; then
    kubectl delete jobset "$1" -n "$NAMESPACE" --wait=true >/dev/null || return 1
  fi
  kubectl apply -n "$NAMESPACE" -f "$1.yaml" >/dev/null || return 1
  while state=$(terminal_state "$1"); [[ $state != Completed && $state != Failed ]]; do
    sleep "$POLL"
  done
  [[ $state == Completed ]]
}

if (($#)); then
  run_one "$1"
  exit
fi

OUTCOMES=$(mktemp -d)
trap 'rm -rf "$OUTCOMES"' EXIT

# run NAME [INPUT ...]: waits for every input's outcome, then runs NAME if all of them completed.
run() {
  local name=$1 input
  shift
  for input; do
    until [[ -e $OUTCOMES/$input.completed || -e $OUTCOMES/$input.failed ]]; do sleep "$POLL"; done
    if [[ -e $OUTCOMES/$input.failed ]]; then
      echo "skipped $name: its input $input did not complete"
      touch "$OUTCOMES/$name.failed"
      return
    fi
  done
  echo "started $name"
  if run_one "$name"; then
    touch "$OUTCOMES/$name.completed"
    echo "completed $name"
  else
    touch "$OUTCOMES/$name.failed"
    echo "FAILED $name"
  fi
}

{{runs}}
wait
failed=$(find "$OUTCOMES" -name '*.failed' | wc -l)
echo "study $STUDY: $(({{count}} - failed)) of {{count}} steps completed"
((failed == 0))
