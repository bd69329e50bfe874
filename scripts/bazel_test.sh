#!/usr/bin/env bash
# Runs kmix's tests with Bazel, offline, from any checkout.
#
#   scripts/bazel_test.sh              # bazel test //...  (every target)
#   scripts/bazel_test.sh --fast       # without the tests tagged "slow"
#   scripts/bazel_test.sh [--fast] [bazel test flags...] [targets...]
#
# e.g.  scripts/bazel_test.sh //tests:test_major_mix --test_filter=minor
#
# Needs: Debian's bazel-bootstrap and bazel-bootstrap-source packages, and the
# project's virtualenv at <repo>/.venv (README's set-up), or KMIX_PYTHON set to
# a Python that has kmix's dependencies. Environment knobs:
#   KMIX_PYTHON           interpreter to use instead of <repo>/.venv/bin/python3
#   KMIX_BAZEL_TEST_JOBS  tests run at once (default 2; use 1 on a busy box)
#   BAZEL                 the bazel binary (default: bazel on PATH)
# See docs/bazel.md.
set -euo pipefail

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"

bazel_bin="${BAZEL:-bazel}"
if ! command -v "${bazel_bin}" >/dev/null 2>&1; then
  echo "bazel_test.sh: '${bazel_bin}' not found." \
    "Install it: apt-get install -y bazel-bootstrap bazel-bootstrap-source" >&2
  exit 2
fi
mock_repos=/usr/src/bazel-bootstrap/mock_repos
if [ ! -d "${mock_repos}/rules_cc" ]; then
  echo "bazel_test.sh: ${mock_repos} is missing (needed to build offline)." \
    "Install it: apt-get install -y bazel-bootstrap-source" >&2
  exit 2
fi

flags=()
if [ -n "${KMIX_PYTHON:-}" ]; then
  if [ ! -x "${KMIX_PYTHON}" ]; then
    echo "bazel_test.sh: KMIX_PYTHON=${KMIX_PYTHON} is not executable" >&2
    exit 2
  fi
  # tools/python/python3.sh reads it (`bazel run` passes the shell env anyway).
  flags+=("--test_env=KMIX_PYTHON")
elif [ ! -x "${repo}/.venv/bin/python3" ]; then
  echo "bazel_test.sh: no virtualenv at ${repo}/.venv; create it as the README" \
    "says, or set KMIX_PYTHON." >&2
  exit 2
fi

targets=()
for arg in "$@"; do
  case "${arg}" in
    --fast) flags+=("--config=fast") ;;
    -*) flags+=("${arg}") ;;
    *) targets+=("${arg}") ;;
  esac
done
if [ "${#targets[@]}" -eq 0 ]; then
  targets=("//...")
fi
flags+=("--local_test_jobs=${KMIX_BAZEL_TEST_JOBS:-2}")
if [ ! -t 1 ]; then
  # CI logs: no progress bar redraws.
  flags+=("--curses=no" "--color=no" "--show_progress_rate_limit=30")
fi

set -x
exec "${bazel_bin}" test "${flags[@]}" -- "${targets[@]}"
