#!/usr/bin/env bash
# Runs every kmix test once: the tests marked `slow` with pytest, then all the
# others with Bazel (`scripts/bazel_test.sh --fast`, two test files at a time).
# Bazel and pytest run the same tests/test_*.py files (see docs/bazel.md).
# Run scripts/setup.sh --test first.
#
#   bash scripts/test.sh                    # the README's test command (CI)
#   KMIX_SKIP_BAZEL=1 bash scripts/test.sh  # everything with pytest, no Bazel
set -uo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"

if [ -n "${KMIX_SKIP_BAZEL:-}" ]; then
  marker=()
else
  marker=(-m slow)
fi
.venv/bin/python -m pytest -q tests "${marker[@]}" "$@"
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
.venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)" || {
  echo "test.sh: the documentation does not build without warnings (mkdocs build --strict)." >&2
  exit 1
}
echo "test.sh: all tests passed and the docs build."
