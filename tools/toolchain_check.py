"""Checks the Bazel Python toolchain: right interpreter, third-party packages.

Run with `bazel test //tools:toolchain_check` (scripts/bazel_test.sh runs it
with everything else). It fails with a message that says what is missing, so a
broken set-up shows up here rather than as an ImportError in every test.
It does not import kmix itself (kmix_import_check.py does).
"""

import importlib
import importlib.util
import os
import sys
import unittest

# Distribution name -> module, for what kmix and its tests import.
THIRD_PARTY = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "keras-tuner": "keras_tuner",
    "tensorflow-datasets": "tensorflow_datasets",
    "absl-py": "absl",
    "numpy": "numpy",
    "matplotlib": "matplotlib",
    "pytest": "pytest",
}


class ToolchainTest(unittest.TestCase):
    def test_python_3_10_or_newer(self):
        self.assertGreaterEqual(sys.version_info[:2], (3, 10), sys.version)

    def test_runs_in_a_virtualenv_or_kmix_python(self):
        # The interpreter should be the project's .venv (or $KMIX_PYTHON), not the
        # system python3 that python3.sh falls back to.
        in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
        explicit = bool(os.environ.get("KMIX_PYTHON"))
        self.assertTrue(
            in_venv or explicit,
            f"Bazel's Python is {sys.executable} (prefix {sys.prefix}), not a "
            "virtualenv: create <repo>/.venv as the README says, or set "
            "KMIX_PYTHON (see docs/bazel.md).",
        )

    def test_third_party_packages_import(self):
        missing = []
        for dist, module in THIRD_PARTY.items():
            try:
                importlib.import_module(module)
            except (
                ImportError
            ) as e:  # pragma: no cover - the failure message path
                missing.append(f"{dist} ({module}): {e}")
        self.assertEqual(
            missing,
            [],
            f"missing from {sys.executable}: install with "
            "`pip install -e '.[cpu,dev]'` in the project's .venv",
        )

    def test_tensorflow_is_2_x_and_keras_3(self):
        import keras
        import tensorflow as tf

        self.assertEqual(tf.__version__.split(".")[0], "2", tf.__version__)
        self.assertEqual(
            keras.__version__.split(".")[0], "3", keras.__version__
        )
        self.assertEqual(keras.backend.backend(), "tensorflow")

    def test_kmix_source_comes_from_runfiles(self):
        # kmix must resolve to this checkout's source (as declared in //kmix and
        # laid out in the runfiles tree), not to a copy installed in the venv.
        # find_spec does not execute kmix/__init__.py (kmix_import_check does).
        spec = importlib.util.find_spec("kmix")
        self.assertIsNotNone(spec, f"kmix not found on sys.path {sys.path}")
        runfiles = os.environ.get("TEST_SRCDIR") or os.environ.get(
            "RUNFILES_DIR"
        )
        self.assertTrue(runfiles, "not running under Bazel")
        self.assertTrue(
            os.path.abspath(spec.origin).startswith(os.path.abspath(runfiles)),
            f"kmix imported from {spec.origin}, outside the runfiles {runfiles}",
        )


if __name__ == "__main__":
    unittest.main()
