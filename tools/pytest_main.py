"""Runs pytest on one test file as a Bazel py_test (see tools/pytest.bzl).

Usage (what the kmix_py_test macro generates):

    pytest_main.py [--kmix_select=fast|slow] tests/test_major_mix.py [pytest args...]

--kmix_select splits one file along pytest's `slow` marker (pytest.ini): `fast`
runs `pytest -m "not slow"`, `slow` runs `pytest -m slow` (and, if neither the
file nor a conftest.py above it mentions "slow", exits at once without
importing anything, so files with no slow tests cost nothing).

The path is relative to the test's working directory, the workspace root in
the runfiles tree, so tests/conftest.py and any pytest.ini / pyproject.toml /
setup.cfg in the runfiles apply exactly as they do for a plain `pytest` run.

Bazel's test protocol is honoured:
  * XML_OUTPUT_FILE      -> pytest --junitxml (per-test-case results in
                            bazel-testlogs/.../test.xml);
  * TESTBRIDGE_TEST_ONLY -> pytest -k (so `bazel test --test_filter=EXPR`
                            selects test cases);
  * TEST_TOTAL_SHARDS / TEST_SHARD_INDEX / TEST_SHARD_STATUS_FILE -> test
    cases are split round-robin over shards when a target sets shard_count;
  * TEST_TMPDIR -> Keras and Matplotlib caches (KERAS_HOME, MPLCONFIGDIR),
    since $HOME may be read-only inside the sandbox; no .pytest_cache.
"""

import os
import re
import sys

# pytest is imported in main(), after the cheap checks.


class _ShardPlugin:
    """Keeps every TEST_TOTAL_SHARDS-th collected test, from TEST_SHARD_INDEX."""

    def __init__(self, index, total):
        self.index = index
        self.total = total

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for i, item in enumerate(items):
            (keep if i % self.total == self.index else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _set_writable_caches(tmp):
    # Keras, Matplotlib and TFDS write under $HOME by default, which the sandbox
    # may make read-only; keep their caches in the test's own temp dir unless
    # the caller chose otherwise.
    for var, sub in (("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "matplotlib")):
        if not os.environ.get(var):
            path = os.path.join(tmp, sub)
            os.makedirs(path, exist_ok=True)
            os.environ[var] = path
    os.environ.setdefault("MPLBACKEND", "Agg")


_SELECT = {"fast": "not slow", "slow": "slow"}


def _may_have_slow_tests(test_file):
    """False only if no test in test_file can carry the `slow` marker."""
    paths = [test_file]
    here = os.path.dirname(os.path.abspath(test_file))
    top = os.path.abspath(os.getcwd())
    while True:
        paths.append(os.path.join(here, "conftest.py"))
        if here == top or os.path.dirname(here) == here:
            break
        here = os.path.dirname(here)
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                if re.search(r"\bslow\b", f.read()):
                    return True
        except OSError:
            pass
    return False


def main(argv):
    args = list(argv[1:])
    select = None
    if args and args[0].startswith("--kmix_select="):
        select = args.pop(0).split("=", 1)[1]
        if select not in _SELECT:
            print(
                f"--kmix_select must be one of {sorted(_SELECT)}, got {select!r}",
                file=sys.stderr,
            )
            return 2
    if not args:
        print(
            "usage: pytest_main.py [--kmix_select=fast|slow] TEST_FILE "
            "[pytest args...]",
            file=sys.stderr,
        )
        return 2
    if select == "slow" and not _may_have_slow_tests(args[0]):
        print(f"{args[0]}: no test is marked slow; nothing to run.")
        return 0
    import pytest  # pylint: disable=g-import-not-at-top

    plugins = []
    if select:
        args += ["-m", _SELECT[select]]
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        _set_writable_caches(tmp)
        # Under `bazel test` the runfiles tree is read-only: no .pytest_cache.
        # (tmp_path stays where a plain pytest run puts it, under $TMPDIR or /tmp.)
        args += ["-p", "no:cacheprovider"]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args += ["--junitxml", xml, "-o", "junit_family=xunit2"]
    test_filter = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "0") or 0)
    if total > 1:
        status = os.environ.get("TEST_SHARD_STATUS_FILE")
        if status:  # Tells Bazel this runner understands sharding.
            open(status, "w").close()
        plugins.append(_ShardPlugin(int(os.environ["TEST_SHARD_INDEX"]), total))
    code = pytest.main(args, plugins=plugins)
    # A shard, a --test_filter or a marker selection that leaves nothing to
    # run is not a failure.
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and (
        total > 1 or test_filter or select
    ):
        code = pytest.ExitCode.OK
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
