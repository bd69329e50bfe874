#!/usr/bin/env bash
# Runs kmix's tests: every pytest test, then the fast Bazel subset (the same
# test files, run by Bazel). Run scripts/setup.sh --test first.
#
#   bash scripts/test.sh              # pytest + bazel test --config=fast //...
#   KMIX_SKIP_BAZEL=1 bash scripts/test.sh   # pytest only
set -uo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"

.venv/bin/python -m pytest -q tests "$@"
status=$?
if [ "${status}" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure for kmix." >&2
  exit 1
elif [ "${status}" -ne 0 ]; then
  exit "${status}"
fi

if [ -z "${KMIX_SKIP_BAZEL:-}" ]; then
  bash scripts/bazel_test.sh --fast || exit $?
fi
