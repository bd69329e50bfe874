#!/usr/bin/env bash
# Runs `pytest -q ARGS...` in kmix's venv and fails with a message naming WHAT
# when pytest fails or collects no test (exit code 5, a failure for kmix, which
# turns into 1). scripts/test.sh and scripts/test_backends.sh run pytest
# through it.
#
#   bash scripts/run_pytest.sh "the slow tests" tests -m slow
set -uo pipefail
if [ "$#" -lt 1 ]; then
  echo "usage: bash scripts/run_pytest.sh WHAT [PYTEST ARGS...]" >&2
  exit 2
fi
what="$1"
shift
.venv/bin/python -m pytest -q "$@"
status=$?
if [ "${status}" -eq 5 ]; then
  echo "run_pytest.sh: ${what}: pytest collected no test; that is a failure for kmix." >&2
  exit 1
elif [ "${status}" -ne 0 ]; then
  echo "run_pytest.sh: ${what} failed (pytest exit code ${status})." >&2
fi
exit "${status}"
