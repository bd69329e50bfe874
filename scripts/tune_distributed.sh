#!/usr/bin/env bash
# Distributed tuning with keras-tuner's chief/worker mode on one machine: one chief
# (the oracle, a gRPC server) and NUM_WORKERS workers (they train the trials), all
# running experiments/tune.py with the same flags.
#
#   scripts/tune_distributed.sh --flagfile=experiments/configs/tune_fashion_mnist_step100.cfg
#
# Environment (defaults in brackets):
#   KERASTUNER_ORACLE_IP    address the chief listens on and workers connect to [127.0.0.1]
#   KERASTUNER_ORACLE_PORT  its TCP port [8000]
#   NUM_WORKERS             workers to start, with KERASTUNER_TUNER_ID tuner0, tuner1, ... [2]
#   PYTHON                  the interpreter [.venv/bin/python if there, else python3]
#   LOG_DIR                 where chief.log and tuner<i>.log go [runs/tuning/logs]
# The chief writes best.cfg and the trial tables when the search ends. Exits non-zero
# if any process failed. On a cluster, start the chief with KERASTUNER_ORACLE_IP set
# to an address the workers can reach and open KERASTUNER_ORACLE_PORT to them
# (docs/tuning.md).
set -euo pipefail

cd "$(dirname "$0")/.."
export KERASTUNER_ORACLE_IP="${KERASTUNER_ORACLE_IP:-127.0.0.1}"
export KERASTUNER_ORACLE_PORT="${KERASTUNER_ORACLE_PORT:-8000}"
workers="${NUM_WORKERS:-2}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
log_dir="${LOG_DIR:-runs/tuning/logs}"
mkdir -p "$log_dir"

KERASTUNER_TUNER_ID=chief "$PYTHON" experiments/tune.py "$@" >"$log_dir/chief.log" 2>&1 &
chief=$!
pids=()
for ((i = 0; i < workers; i++)); do
  KERASTUNER_TUNER_ID="tuner$i" "$PYTHON" experiments/tune.py "$@" >"$log_dir/tuner$i.log" 2>&1 &
  pids+=($!)
done
echo "chief (pid $chief) on $KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT, workers ${pids[*]}; logs in $log_dir"

status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "worker $pid failed (see $log_dir)" >&2; status=1; }
done
if [[ $status -ne 0 ]]; then
  kill "$chief" 2>/dev/null || true
fi
wait "$chief" || { echo "chief failed (see $log_dir/chief.log)" >&2; status=1; }
exit $status
