#!/usr/bin/env bash
# GPU figures of docs/performance.md, on a machine without TensorFlow.
#
# Run from the repository root on the lent GPU machine (JAX and PyTorch with
# CUDA, no TensorFlow, no Keras, no internet), with the wheels of .whl/
# (keras, namex, optree; .whl/fallback/: typing_extensions, installed only
# if missing) and the Fashion-MNIST IDX files in .gpu_data/fashion-mnist/,
# both put there first on a machine with PyPI and Debian's
# dataset-fashion-mnist, and carried along (both are git-ignored):
#
#     bash benchmarks/gpu_checks.sh prepare   # here: wheels, data, study indices
#     bash benchmarks/gpu_checks.sh           # there: the measurements below
#     bash benchmarks/gpu_checks.sh study     # there: the seed study, instead
#
# `prepare` also writes .gpu_data/study_{step100,step10,exp100}_indices.npz,
# the step-100, step-10 and exp-100 selections of the method study's seeds
# 0-23 (benchmarks/gpu_study.py prepare, which needs TensorFlow, hence here).
#
# Measurements, most important first, each under `timeout` and within one
# budget (GPU_CHECKS_BUDGET_S, default 330 s, from the start of the script),
# each writing to ${OUT:-/tmp/out}; a failing one does not stop the next:
#
#   1. jax_overhead.json: benchmarks/step_overhead.py --backend=jax (XLA),
#      ResNet-32, batch 128, plain keras.Model and kmix.MixModel + MajorMix,
#      paired with benchmarks/torch_resnet32.py's plain PyTorch loop on the
#      same GPU in the same rounds (NCHW and channels-last);
#   2. step100_jax.json: benchmarks/gpu_step100.py, step-100 Fashion-MNIST,
#      small CNN with and without MajorMix, 6 epochs, jit_compile=True;
#   3. torch_pair.json: the same ResNet-32 measurement on the PyTorch
#      backend, paired with benchmarks/torch_resnet32.py's plain PyTorch
#      loop on the same device (CUDA) in the same rounds, NCHW and
#      channels-last: the kmix / PyTorch ratio.
#
# gpu_checks.log holds everything printed, and ends with each exit status.
#
# `study`, a separate call: benchmarks/gpu_study.py run, seeds 0-23 of CE,
# CE + MajorMix, the tuned MajorMix, MajorMix decaying, logit adjustment at
# the study's step-100 budget (60 epochs; GPU_STUDY_PROFILE=exp for exp-100,
# GPU_STUDY_RATIO=10 for step-10, GPU_STUDY_METHODS=ce,ldam_drw,mm_graded,...
# for other methods of gpu_study.py's METHODS), 6 worker processes on the one
# GPU, within GPU_STUDY_BUDGET_S (default 330 s, from the start of the
# script; no job starts that would not end in it). $OUT gets
# gpu_study_<worker>.jsonl (one JSON line per finished run, written as each
# ends) and gpu_study.log; `python benchmarks/gpu_study.py report
# --in_dir=<them>` makes the tables here.
#
# Local test (CPU, tiny sizes, no pip):
#     GPU_CHECKS_QUICK=1 GPU_CHECKS_NO_INSTALL=1 PYTHON=.venv/bin/python \
#         OUT=/tmp/gpu_out bash benchmarks/gpu_checks.sh [study]
set -euo pipefail
export PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=2
# `import keras` needs a backend it can load; Keras' default, TensorFlow,
# is not installed there (each measurement names its own backend).
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
# JAX and PyTorch share the GPU in the paired runs: JAX takes memory as it
# needs it instead of 75 % of the card up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/out}"
BUDGET="${GPU_CHECKS_BUDGET_S:-330}"
DATA_DIR="${GPU_DATA_DIR:-.gpu_data/fashion-mnist}"
mkdir -p "$OUT"
T0=$SECONDS
STATUS=()

if [[ "${GPU_CHECKS_QUICK:-0}" == 1 ]]; then
  OVERHEAD_ARGS=(--rounds=2 --steps=1 --warmup=1 --batch_size=8)
  STEP100_ARGS=(--epochs=2 --max_per_class=300)
  PAIR_ARGS=(--rounds=2 --steps=1 --warmup=1 --batch_size=8)
else
  OVERHEAD_ARGS=(--rounds=10 --steps=20 --warmup=5 --batch_size=128)
  STEP100_ARGS=(--epochs=6)
  PAIR_ARGS=(--rounds=8 --steps=10 --warmup=5 --batch_size=128)
fi

install_wheels() {
  local site=/tmp/site
  if [[ "${GPU_CHECKS_NO_INSTALL:-0}" != 1 ]]; then
    local wheels=(.whl/*.whl)
    if ! "$PY" -c 'import typing_extensions' 2>/dev/null; then
      wheels+=(.whl/fallback/*.whl)
    fi
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$site" "${wheels[@]}"; then
      echo "pip failed; unpacking the wheels instead"
      for wheel in "${wheels[@]}"; do "$PY" -m zipfile -e "$wheel" "$site"; done
    fi
    export PYTHONPATH="$site:$PWD"
  else
    export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
  fi
}

# measure NAME CAP_S COMMAND...: runs COMMAND under timeout (CAP_S, or what
# is left of the budget), records its exit status, never fails.
measure() {
  local name=$1 cap=$2 start=$SECONDS rc=0
  shift 2
  local left=$((BUDGET - (SECONDS - T0)))
  if ((left < 20)); then
    echo "=== $name: skipped, ${left} s of the budget left"
    STATUS+=("$name: skipped")
    return 0
  fi
  local limit=$((cap < left ? cap : left))
  echo "=== $name (timeout ${limit} s): $*"
  timeout -k 10 "$limit" "$@" || rc=$?
  echo "=== $name: exit status $rc after $((SECONDS - start)) s"
  STATUS+=("$name: exit status $rc ($((SECONDS - start)) s)")
}

# The Python 3.12 wheels the GPU machine lacks, and the Fashion-MNIST files.
prepare() {
  local platforms=()
  for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_x86_64")
  done
  local keras_version
  keras_version="$("$PY" -c 'import keras; print(keras.__version__)')"
  local download=("$PY" -m pip download -q --no-deps --only-binary=:all:
    --python-version 3.12 --implementation cp "${platforms[@]}")
  "${download[@]}" -d .whl "keras==${keras_version}" namex optree
  "${download[@]}" -d .whl/fallback typing_extensions
  mkdir -p "$DATA_DIR"
  cp /usr/share/datasets/fashion-mnist/*-ubyte.gz "$DATA_DIR"/
  for cell in step:100 step:10 exp:100; do
    "$PY" benchmarks/gpu_study.py prepare --seeds=0-23 --data_dir="$DATA_DIR" \
      --profile="${cell%%:*}" --imbalance_ratio="${cell##*:}"
  done
  du -sh .whl "$DATA_DIR" .gpu_data/study_*_indices.npz
}

# The seed study (benchmarks/gpu_study.py run), within GPU_STUDY_BUDGET_S.
study() {
  local budget="${GPU_STUDY_BUDGET_S:-330}" args rc=0
  if [[ "${GPU_CHECKS_QUICK:-0}" == 1 ]]; then
    args=(--seeds=0-1 --methods=ce,mm_decay --workers=2 --epochs=2)
  else
    args=(--seeds=0-23 --profile="${GPU_STUDY_PROFILE:-step}"
      --imbalance_ratio="${GPU_STUDY_RATIO:-100}"
      --methods="${GPU_STUDY_METHODS:-ce,mm,mm_tuned,mm_decay,la}"
      --workers="${GPU_STUDY_WORKERS:-6}")
  fi
  echo "gpu_checks.sh study: $(date -u +%FT%TZ), budget ${budget} s, quick=${GPU_CHECKS_QUICK:-0}"
  install_wheels
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
  # gpu_study.py stops starting jobs at its deadline, stops training
  # --grace_s later and kills its workers 30 s after that: all within the
  # budget, with `timeout` as the last guard.
  local left=$((budget - (SECONDS - T0)))
  local deadline=$((left - 40))
  if ((deadline < 30)); then
    echo "=== study: skipped, ${left} s of the budget left"
    return 1
  fi
  echo "=== study (deadline ${deadline} s): gpu_study.py run ${args[*]}"
  timeout -k 10 "$((left + 5))" "$PY" benchmarks/gpu_study.py run "${args[@]}" \
    --out_dir="$OUT" --data_dir="$DATA_DIR" --deadline_s="$deadline" \
    --grace_s=10 || rc=$?
  echo "=== study: exit status $rc after $((SECONDS - T0)) s"
  return "$rc"
}

main() {
  echo "gpu_checks.sh: $(date -u +%FT%TZ), budget ${BUDGET} s, quick=${GPU_CHECKS_QUICK:-0}"
  install_wheels
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
    --format=csv 2>/dev/null || true
  "$PY" - <<'EOF' || echo "versions: failed"
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "jax", "torch", "keras", "optree", "kmix"):
    try:
        module = importlib.import_module(name)
        print(name, module.__version__, module.__file__)
    except Exception as error:  # report and go on
        print(name, "unavailable:", type(error).__name__, error)
try:
    import jax
    print("jax devices", jax.devices())
    print("jax_default_matmul_precision", jax.config.jax_default_matmul_precision)
except Exception as error:
    print("jax devices unavailable:", error)
EOF

  measure jax_overhead 170 "$PY" benchmarks/step_overhead.py \
    --backend=jax --models=plain,mix \
    --pytorch_loop=contiguous,channels_last "${OVERHEAD_ARGS[@]}" \
    --json_out="$OUT/jax_overhead.json"
  measure step100_jax 120 "$PY" benchmarks/gpu_step100.py --backend=jax \
    --data_dir="$DATA_DIR" "${STEP100_ARGS[@]}" \
    --json_out="$OUT/step100_jax.json"
  measure torch_pair 90 "$PY" benchmarks/step_overhead.py \
    --backend=torch --models=plain,mix \
    --pytorch_loop=contiguous,channels_last "${PAIR_ARGS[@]}" \
    --json_out="$OUT/torch_pair.json"

  echo "=== summary after $((SECONDS - T0)) s"
  printf '%s\n' "${STATUS[@]}"
}

case "${1:-}" in
  prepare)
    PY="${PYTHON:-.venv/bin/python}"
    prepare
    ;;
  study)
    study 2>&1 | tee "$OUT/gpu_study.log"
    ;;
  "")
    main 2>&1 | tee "$OUT/gpu_checks.log"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_checks.sh [prepare|study]" >&2
    exit 2
    ;;
esac
