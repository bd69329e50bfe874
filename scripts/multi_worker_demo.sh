#!/usr/bin/env bash
# Trains a tiny Fashion-MNIST run with --strategy=multi_worker: two worker
# processes on 127.0.0.1, each with its own TF_CONFIG, one training job
# (tf.distribute.MultiWorkerMirroredStrategy). Worker 0 is the chief and
# writes the results to $OUT/worker_0; worker 1 writes to $OUT/worker_1.
#
#   bash scripts/multi_worker_demo.sh [OUT]        (default OUT: runs/multi_worker_demo)
#
# On a real cluster, give each machine the same "cluster" list with its own
# host:port, its own "task" index, and open those ports between the machines.
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"
out="${1:-runs/multi_worker_demo}"
python="${KMIX_PYTHON:-${repo}/.venv/bin/python}"
ports=($("${python}" - <<'PY'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
))
cluster="\"worker\": [\"127.0.0.1:${ports[0]}\", \"127.0.0.1:${ports[1]}\"]"
mkdir -p "$(dirname "${out}")"
pids=()
for index in 0 1; do
  TF_CONFIG="{\"cluster\": {${cluster}}, \"task\": {\"type\": \"worker\", \"index\": ${index}}}" \
    "${python}" experiments/run.py --strategy=multi_worker --dataset=fashion_mnist \
      --profile=step --imbalance_ratio=10 --train_fraction=0.01 --epochs=2 --batch_size=64 \
      --width=8 --lr_schedule=constant --learning_rate=0.05 --seeds=0 --verbose=2 \
      --nodeterministic --nodiagnostics --output_dir="${out}/worker_${index}" > "${out}.worker_${index}.log" 2>&1 &
  pids+=($!)
done
status=0
for index in 0 1; do
  if ! wait "${pids[${index}]}"; then
    echo "multi_worker_demo.sh: worker ${index} failed; its log: ${out}.worker_${index}.log" >&2
    status=1
  fi
done
[ "${status}" -eq 0 ] && echo "multi_worker_demo.sh: both workers finished; chief results in ${out}/worker_0"
exit "${status}"
