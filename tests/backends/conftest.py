"""Set-up of the tests that run under every Keras backend.

`scripts/test_backends.sh` runs this directory once per backend
(`KERAS_BACKEND=jax|torch|tensorflow pytest tests/backends`); the tests use
`keras.ops` and NumPy only, so the same file checks the same numbers on each.
`other_backends` and `run_on_backend` let a test hand work (for example
loading a `.keras` file) to a fresh process on another backend.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

BACKENDS = ("tensorflow", "jax", "torch")
REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def pytest_report_header(config):
    return f"kmix backend tests: KERAS_BACKEND={keras.backend.backend()}"


@pytest.fixture
def backend():
    """The Keras backend these tests run on."""
    return keras.backend.backend()


@pytest.fixture
def other_backends(backend):
    """The Keras backends other than this one."""
    return [name for name in BACKENDS if name != backend]


@pytest.fixture
def run_on_backend():
    """Runs Python `code` in a fresh process on `backend`; returns its JSON.

    The code prints one JSON value as its last line of standard output.
    """

    def run(backend, code, timeout=300):
        environment = dict(os.environ, KERAS_BACKEND=backend)
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        environment["PYTHONPATH"] = REPO
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"the code failed on backend {backend!r}:\n{result.stderr[-4000:]}"
            )
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run
