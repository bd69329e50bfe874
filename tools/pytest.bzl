"""Bazel macros that run kmix's pytest files as py_test targets.

The test files are the ones `pytest` runs (tests/test_*.py): each target runs
pytest on its file through //tools:pytest_main.py, from the workspace root of
the runfiles tree, so tests/conftest.py and pytest.ini apply as usual.

kmix_pytest_suite makes two targets per file, split along pytest's `slow`
marker (registered in pytest.ini):

    //tests:test_x       pytest -m "not slow" tests/test_x.py   size "medium"
    //tests:test_x_slow  pytest -m slow tests/test_x.py         size "large", tag "slow"

so `bazel test --test_tag_filters=-slow //...` (the fast subset) runs what
`pytest -m "not slow"` runs, and `bazel test //...` runs every test once.
A `_slow` target whose file has no slow test returns at once.

Typical use, in tests/BUILD:

    kmix_pytest_suite(
        srcs = glob(["test_*.py"]),
        slow = {"test_big.py": "large"},  # the whole file is slow
        sizes = {"test_x.py": "large"},   # its fast part needs > 300 s
    )

A new tests/test_foo.py needs no BUILD change.
"""

_LAUNCHER = "//tools:pytest_main.py"

def kmix_py_test(
        name,
        src,
        select = None,
        size = "medium",
        slow = False,
        shard_count = None,
        args = [],
        data = [],
        deps = [],
        tags = [],
        **kwargs):
    """One py_test that runs pytest on `src`.

    Args:
      name: target name.
      src: the pytest file, in the calling package.
      select: None (every test in the file), "fast" (pytest -m "not slow") or
        "slow" (pytest -m slow).
      size: Bazel test size ("small", "medium", "large", "enormous"); sets
        the timeout (60 s, 300 s, 900 s, 3600 s) and the resources Bazel
        reserves for the test.
      slow: if True, tags the test "slow", so
        `bazel test --test_tag_filters=-slow //...` (the fast subset) skips it.
      shard_count: optional; pytest_main.py splits the file's test cases
        round-robin over the shards.
      args: extra pytest arguments.
      data, deps, tags, **kwargs: as for py_test.
    """
    if select not in (None, "fast", "slow"):
        fail("select must be None, \"fast\" or \"slow\", got %r" % select)
    native.py_test(
        name = name,
        size = size,
        srcs = [src, _LAUNCHER],
        main = _LAUNCHER,
        args = (["--kmix_select=" + select] if select else []) +
               ["$(rootpath %s)" % src] + args,
        data = data,
        deps = deps + ["//tools:pytest_main"],
        tags = tags + (["slow"] if slow else []),
        shard_count = shard_count,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )

def kmix_pytest_suite(
        name = "all",
        srcs = [],
        size = "medium",
        slow_size = "large",
        slow = {},
        sizes = {},
        shard_counts = {},
        args = {},
        file_data = {},
        data = [],
        deps = [],
        tags = [],
        **kwargs):
    """Two kmix_py_tests per file (see above), and test_suites `name`, "fast".

    Args:
      name: name of the test_suite holding every generated test.
      srcs: the pytest files, e.g. glob(["test_*.py"]).
      size: size of the "not slow" part of a file.
      slow_size: size of the part of a file marked slow.
      slow: dict file -> size (or a list of files, size "large"): files that
        are slow as a whole (even their tests not marked slow); one target
        each, tagged "slow", so the fast subset skips the file.
      sizes: dict file -> size of the "not slow" part, when not `size`.
      shard_counts: dict file -> shard_count.
      args: dict file -> list of extra pytest args.
      file_data: dict file -> list of extra data (files, scripts) that file's
        tests need.
      data, deps, tags, **kwargs: given to every test.
    """
    if type(slow) == "list":
        slow = {f: "large" for f in slow}
    for f in list(slow.keys()) + list(sizes.keys()) + list(shard_counts.keys()) + list(args.keys()) + list(file_data.keys()):
        if f not in srcs:
            fail("%s is named in kmix_pytest_suite but is not one of its srcs" % f)
    all_tests = []
    fast_tests = []
    for src in srcs:
        if not src.endswith(".py"):
            fail("%s: kmix_pytest_suite wants .py files" % src)
        base = src[:-len(".py")].replace("/", "_")
        common = dict(
            src = src,
            shard_count = shard_counts.get(src),
            args = args.get(src, []),
            data = data + file_data.get(src, []),
            deps = deps,
            tags = tags,
        )
        common.update(kwargs)
        if src in slow:
            kmix_py_test(name = base, size = slow[src], slow = True, **common)
            all_tests.append(":" + base)
            continue
        kmix_py_test(
            name = base,
            select = "fast",
            size = sizes.get(src, size),
            **common
        )
        kmix_py_test(
            name = base + "_slow",
            select = "slow",
            size = slow_size,
            slow = True,
            **common
        )
        all_tests += [":" + base, ":" + base + "_slow"]
        fast_tests.append(":" + base)
    native.test_suite(name = name, tests = all_tests)
    native.test_suite(name = "fast", tests = fast_tests)
