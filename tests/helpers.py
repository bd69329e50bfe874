"""Set-up shared by the test files: the repository root, the real-data marker, absl flags."""

import os
import subprocess
import sys

import pytest
from absl import flags

from kmix.data.sources import DEBIAN_FASHION_MNIST_DIR

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isdir(DEBIAN_FASHION_MNIST_DIR),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION_MNIST_DIR} is "
    "missing): apt-get install dataset-fashion-mnist, or run scripts/setup.sh --test",
)


def use_flags(define_flags):
    """Defines a script's absl flags and marks them parsed, so tests can set them."""
    define_flags()
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return flags.FLAGS


def run_python(code, env=None, timeout=300):
    """Runs `code` in a fresh interpreter from the repository root; returns its stdout.

    For what must not happen in the test process itself (blocked imports,
    another Keras backend, a script's absl flags). Fails the test, with the
    end of stderr, unless the interpreter exits with 0.
    """
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
