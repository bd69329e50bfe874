#!/bin/sh
# Python interpreter of kmix's Bazel toolchain (//tools/python:venv_toolchain).
#
# Bazel runs this script (as a runfile) wherever it would run `python3`. It
# picks, in order:
#   1. $KMIX_PYTHON, if set and executable (pass it into Bazel with
#      --action_env=KMIX_PYTHON --test_env=KMIX_PYTHON; scripts/bazel_test.sh
#      does this);
#   2. <repo>/.venv/bin/python3, where <repo> is the checkout this script
#      lives in, found by resolving the runfiles symlink back to the source
#      file (so it works for any checkout path, sandboxed or not);
#   3. python3 on PATH, with a warning.
set -e

if [ -n "${KMIX_PYTHON:-}" ] && [ -x "${KMIX_PYTHON}" ]; then
  exec "${KMIX_PYTHON}" "$@"
fi

self="$(readlink -f -- "$0" 2>/dev/null || true)"
if [ -n "${self}" ]; then
  repo="$(cd -- "$(dirname -- "${self}")/../.." && pwd -P)"
  if [ -x "${repo}/.venv/bin/python3" ]; then
    exec "${repo}/.venv/bin/python3" "$@"
  fi
fi

echo "kmix: no virtualenv at ${repo:-<unknown>}/.venv and KMIX_PYTHON unset;" \
  "falling back to python3 on PATH ($(command -v python3 || echo none))." >&2
exec python3 "$@"
