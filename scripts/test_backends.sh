#!/usr/bin/env bash
# Runs kmix's model-side tests (tests/backends) once per Keras backend:
# JAX, PyTorch and TensorFlow, each in its own pytest process (a process holds
# one backend). Part of scripts/test.sh; run it alone after setup.sh --test.
#
#   bash scripts/test_backends.sh                 # all three backends
#   bash scripts/test_backends.sh jax             # one backend
#   bash scripts/test_backends.sh jax -k major    # extra pytest arguments
set -uo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"

backends=(jax torch tensorflow)
case "${1:-}" in
  jax | torch | tensorflow)
    backends=("$1")
    shift
    ;;
esac
for backend in "${backends[@]}"; do
  echo "test_backends.sh: tests/backends with KERAS_BACKEND=${backend}"
  KERAS_BACKEND="${backend}" bash scripts/run_pytest.sh "tests/backends on ${backend}" \
    -p no:cacheprovider tests/backends "$@" || exit $?
done
echo "test_backends.sh: tests/backends passed on ${backends[*]}."
