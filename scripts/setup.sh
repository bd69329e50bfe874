#!/usr/bin/env bash
# Sets kmix up on a fresh Debian machine, from the repository root or anywhere:
#   - Debian's dataset-fashion-mnist (the offline data the main job uses),
#   - with --test: Debian's bazel-bootstrap and bazel-bootstrap-source too,
#   - a virtualenv in <repo>/.venv with kmix installed as `pip install -e ".[cpu,dev]"`,
#     and with --test the JAX and PyTorch backends too (".[cpu,dev,jax,torch]",
#     CPU builds) for scripts/test_backends.sh.
# Re-running it is cheap: it installs only what is missing.
#
#   bash scripts/setup.sh          # for the main job
#   bash scripts/setup.sh --test   # for the tests (pytest and Bazel)
#
# Environment: PYTHON (default python3) builds the virtualenv; KMIX_EXTRA
# (default cpu) picks the TensorFlow extra: cpu -> tensorflow-cpu, gpu ->
# tensorflow[and-cuda].
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"

packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
  command -v bazel >/dev/null 2>&1 || packages+=(bazel-bootstrap)
  [ -d /usr/src/bazel-bootstrap/mock_repos ] || packages+=(bazel-bootstrap-source)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup.sh: installing Debian packages: ${packages[*]}"
  ${sudo} apt-get update -q
  DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -q "${packages[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
extras="${KMIX_EXTRA:-cpu},dev"
[ "${1:-}" = "--test" ] && extras="${extras},jax,torch"
.venv/bin/python -m pip install -q -e ".[${extras}]"
.venv/bin/python -c "import kmix; print('setup.sh: kmix', kmix.__version__, 'ready in .venv')"
