#!/usr/bin/env bash
# Runs every kmix check once, in this order:
#   1. ruff: `ruff format --check` and `ruff check` of kmix, experiments,
#      benchmarks, tests and tools (ruff.toml); a finding fails the command at
#      the end, after the tests have run;
#   2. the `>>>` examples in kmix's docstrings, as doctests
#      (`pytest --doctest-modules kmix`, names from kmix/conftest.py);
#   3. the tests marked `slow`, with pytest (the others are deselected there);
#   4. all the other tests, with Bazel (`scripts/bazel_test.sh --fast`, two
#      test files at a time), then the Bazel server is shut down;
#   5. the model-side tests under every Keras backend (tests/backends, one
#      pytest process per backend: scripts/test_backends.sh);
#   6. the docs build (`mkdocs build --strict`).
# Bazel and pytest run the same tests/test_*.py files (see docs/bazel.md).
# Run scripts/setup.sh --test first.
#
#   bash scripts/test.sh                    # the README's test command (CI)
#   KMIX_SKIP_BAZEL=1 bash scripts/test.sh  # everything with pytest, no Bazel
#   KMIX_KEEP_BAZEL=1 bash scripts/test.sh  # leave the Bazel server running
set -uo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${repo}"

logs="$(mktemp -d)"
bazel_started=""
cleanup() {
  if [ -n "${bazel_started}" ] && [ -z "${KMIX_KEEP_BAZEL:-}" ]; then
    # The server would otherwise idle for --max_idle_secs (.bazelrc) holding
    # ~260 MB; the next run starts a fresh one in a few seconds.
    "${BAZEL:-bazel}" shutdown >/dev/null 2>&1 || true
  fi
  rm -rf "${logs}"
}
trap cleanup EXIT
trap 'exit 130' INT  # so that an interrupted run shuts Bazel down too
trap 'exit 143' TERM

# pytest_counts LOG: "12 passed, 3 skipped" from pytest's summary line.
pytest_counts() {
  tail -n 1 "$1" | grep -oE '[0-9]+ (passed|failed|skipped|xfailed|xpassed|errors?)' |
    paste -sd, - | sed 's/,/, /g'
}

# run_pytest NAME LOG ARGS...: pytest through scripts/run_pytest.sh (exit code
# 5, nothing collected, is a failure), its output also in LOG.
run_pytest() {
  local name="$1" log="$2"
  shift 2
  bash scripts/run_pytest.sh "${name}" "$@" 2>&1 | tee "${log}"
  local status="${PIPESTATUS[0]}"
  if [ "${status}" -ne 0 ]; then
    exit "${status}"
  fi
}

lint_paths=(kmix experiments benchmarks tests tools)
if [ ! -x .venv/bin/ruff ]; then
  echo "test.sh: .venv/bin/ruff is missing: run scripts/setup.sh --test." >&2
  exit 1
fi
lint_failed=()
echo "test.sh: ruff format --check and ruff check of ${lint_paths[*]}"
.venv/bin/ruff format --check --output-format concise "${lint_paths[@]}" ||
  lint_failed+=("ruff format --check")
.venv/bin/ruff check --output-format concise "${lint_paths[@]}" || lint_failed+=("ruff check")

echo "test.sh: the docstring examples of kmix (pytest --doctest-modules kmix)"
run_pytest "the docstring examples" "${logs}/doctest.log" --doctest-modules kmix
doctest_counts="$(pytest_counts "${logs}/doctest.log")"

if [ -n "${KMIX_SKIP_BAZEL:-}" ]; then
  echo "test.sh: every test in tests/ with pytest (KMIX_SKIP_BAZEL is set: no Bazel)"
  run_pytest "the tests" "${logs}/pytest.log" tests "$@"
  ran="pytest ran the docstring examples (${doctest_counts}) and every test in tests/ ($(pytest_counts "${logs}/pytest.log")); Bazel did not run (KMIX_SKIP_BAZEL)"
else
  echo "test.sh: the tests marked slow with pytest; the others are deselected there and run with Bazel next"
  run_pytest "the slow tests" "${logs}/pytest.log" tests -m slow "$@"
  bazel_started=1
  bash scripts/bazel_test.sh --fast 2>&1 | tee "${logs}/bazel.log"
  status="${PIPESTATUS[0]}"
  if [ "${status}" -ne 0 ]; then
    echo "test.sh: the Bazel tests failed (exit code ${status})." >&2
    exit "${status}"
  fi
  bazel_counts="$(grep -oE 'Executed [0-9]+ out of [0-9]+ tests?: [^.]*' "${logs}/bazel.log" | tail -n 1)"
  ran="pytest ran the docstring examples (${doctest_counts}) and the tests marked slow ($(pytest_counts "${logs}/pytest.log")); Bazel ran the other tests, //... without the tag slow (${bazel_counts:-see its summary above})"
fi
bash scripts/test_backends.sh 2>&1 | tee "${logs}/backends.log"
status="${PIPESTATUS[0]}"
if [ "${status}" -ne 0 ]; then
  echo "test.sh: the tests on the Keras backends failed (exit code ${status})." >&2
  exit "${status}"
fi
ran="${ran}; tests/backends passed on jax, torch and tensorflow"
.venv/bin/mkdocs build --strict --quiet --site-dir "${logs}/site" || {
  echo "test.sh: the documentation does not build without warnings (mkdocs build --strict)." >&2
  exit 1
}
echo "test.sh: ${ran}; the docs build."
if [ "${#lint_failed[@]}" -gt 0 ]; then
  failed="$(printf '%s and ' "${lint_failed[@]}")"
  echo "test.sh: the tests passed, but ${failed% and } found problems (listed at the top)." \
    "Fix them with .venv/bin/ruff format ${lint_paths[*]} and" \
    ".venv/bin/ruff check --fix ${lint_paths[*]} (ruff.toml)." >&2
  exit 1
fi
echo "test.sh: all tests passed, ruff is clean and the docs build."
