"""The method study's driver (benchmarks/study.py): drivers sharing a machine."""

import fcntl
import os
import textwrap

from helpers import REPO
from helpers import run_python

BENCHMARKS = os.path.join(REPO, "benchmarks")


def _run_in_study(code, tmp_path):
    """Runs `code` after importing study.py with --runs_dir=tmp_path/runs.

    In a subprocess: study.py defines absl flags at import, which must not
    meet the flags of other test modules in this process.
    """
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {BENCHMARKS!r})
        import study
        study.FLAGS(["study", "--runs_dir={tmp_path / "runs"}",
                     "--records_dir={tmp_path / "records"}"])
        """
    ) + textwrap.dedent(code)
    return run_python(script)


def test_a_claimed_run_is_skipped_by_another_driver_and_freed_after(tmp_path):
    out = _run_in_study(
        """
        with study.claimed("step100", "mm", 3) as first:
            with study.claimed("step100", "mm", 3) as second:
                with study.claimed("step100", "mm", 4) as other_seed:
                    print(first, second, other_seed)
        with study.claimed("step100", "mm", 3) as again:
            print(again)
        """,
        tmp_path,
    )
    assert out.split() == ["True", "False", "True", "True"]
    assert (tmp_path / "runs" / "step100" / "mm" / "seed_3.lock").exists()


def test_run_skips_a_run_another_driver_holds(tmp_path):
    # This process holds the run's lock, as another driver would: `run` must
    # not train it (it would fail here, run.py being given no data).
    lock_path = tmp_path / "runs" / "step100" / "mm_tuned" / "seed_0.lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = _run_in_study(
            """
            study.FLAGS.phases = ["7"]
            study.FLAGS.max_runs = 1
            study.run_plan()
            """,
            tmp_path,
        )
    assert "step100 mm_tuned 0: being trained by another driver, skipped" in out
