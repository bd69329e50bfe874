"""Checks that kmix, as laid out by //kmix, imports under Bazel.

Separate from toolchain_check so that a broken interpreter and a broken kmix
are told apart. `bazel test //tools:kmix_import_check`.
"""

import os
import unittest


class KmixImportTest(unittest.TestCase):
    def test_kmix_imports_from_runfiles_with_a_version(self):
        import kmix  # pylint: disable=g-import-not-at-top

        runfiles = os.environ.get("TEST_SRCDIR") or os.environ.get(
            "RUNFILES_DIR"
        )
        self.assertTrue(runfiles, "not running under Bazel")
        self.assertTrue(
            os.path.abspath(kmix.__file__).startswith(
                os.path.abspath(runfiles)
            ),
            f"kmix imported from {kmix.__file__}, not from the runfiles {runfiles}",
        )
        self.assertRegex(kmix.__version__, r"^\d+\.\d+")

    def test_public_layer_and_model_are_exported(self):
        import kmix  # pylint: disable=g-import-not-at-top

        for name in ("MajorMix", "MixModel"):
            self.assertTrue(hasattr(kmix, name), f"kmix.{name} missing")


if __name__ == "__main__":
    unittest.main()
