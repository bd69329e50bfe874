"""Training speed of kmix on every Keras backend, against a plain PyTorch loop.

Runs `benchmarks/step_overhead.py` once per Keras backend, each in its own
process (a process holds one backend), with `--models=plain,mix` and
`--pytorch_loop=contiguous,channels_last`: every process times, in the same
balanced rounds, the plain Keras ResNet-32, the `kmix.MixModel` with one
`MajorMix`, and the plain PyTorch loop of `benchmarks/torch_resnet32.py` in
both memory formats. The ratios (MajorMix overhead, kmix's images/s over
PyTorch's) are thus paired round by round against the load of a shared
machine. A last process runs `torch_resnet32.py` alone, to check that
sharing a process with TensorFlow or JAX does not slow the PyTorch loop.

Every process runs once per `--threads` setting; the order of the processes
reverses from one setting to the next. The results go to
`<out_dir>/backends.json` (everything measured) and `<out_dir>/backends.md`
(the tables of `docs/performance.md`).

Usage:

    python benchmarks/backends.py [--threads=all,1] [--rounds=4] [--steps=2]
    python benchmarks/backends.py --backends=tensorflow,pytorch_loop --threads=1
"""

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
from step_overhead import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch", "pytorch_loop")
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list(
        "backends",
        list(BACKENDS),
        f"What to run, one process each, of {BACKENDS} (pytorch_loop: "
        "benchmarks/torch_resnet32.py alone).",
    )
    flags.DEFINE_list(
        "threads",
        ["all", "1"],
        "CPU thread settings to measure: a number, or `all` (every core).",
    )
    flags.DEFINE_integer("rounds", 4, "Timing rounds per process.")
    flags.DEFINE_integer("steps", 2, "Timed steps per model per round.")
    flags.DEFINE_integer("warmup", 1, "Untimed steps per model.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_integer("timeout", 900, "Seconds one process may run.")
    flags.DEFINE_string(
        "out_dir",
        os.path.join(os.path.dirname(HERE), "docs", "benchmark"),
        "Where backends.json and backends.md go.",
    )


def cores():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def command(backend, threads, rounds, steps, warmup, batch_size, json_out):
    """The command line of one process."""
    common = [
        f"--threads={threads}",
        f"--steps={steps}",
        f"--warmup={warmup}",
        f"--batch_size={batch_size}",
        f"--json_out={json_out}",
    ]
    if backend == "pytorch_loop":
        return [
            sys.executable,
            os.path.join(HERE, "torch_resnet32.py"),
            f"--windows={rounds}",
            "--memory_formats=contiguous",
            "--memory_formats=channels_last",
            *common,
        ]
    return [
        sys.executable,
        os.path.join(HERE, "step_overhead.py"),
        f"--backend={backend}",
        f"--rounds={rounds}",
        "--models=plain,mix",
        "--pytorch_loop=contiguous,channels_last",
        *common,
    ]


def run_one(backend, threads, rounds, steps, warmup, batch_size, timeout):
    """Runs one process; returns its result dict, or one with an error."""
    with tempfile.TemporaryDirectory() as tmp:
        json_out = os.path.join(tmp, "result.json")
        argv = command(
            backend, threads, rounds, steps, warmup, batch_size, json_out
        )
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                argv,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            output, returncode = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            output, returncode = f"{e.stdout or ''}{e.stderr or ''}", "timeout"
        wall = time.perf_counter() - start
        if returncode == 0 and os.path.exists(json_out):
            with open(json_out) as f:
                result = json.load(f)
        else:
            tail = [line for line in str(output).splitlines() if line][-5:]
            result = {"backend": backend, "error": f"{returncode}: {tail}"}
    result["process_wall_s"] = wall
    result["command"] = shlex.join(
        [os.path.relpath(argv[1])]
        + [a for a in argv[2:] if not a.startswith("--json_out")]
    )
    return result


def thread_count(setting):
    return cores() if setting == "all" else int(setting)


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every `interval` seconds."""

    def __init__(self, interval=10.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        samples = sorted(self.samples)
        return {
            "samples": self.samples,
            "min": samples[0],
            "median": samples[len(samples) // 2],
            "max": samples[-1],
        }


def run(backends, thread_settings, rounds, steps, warmup, batch_size, timeout):
    """Runs every process; returns `{threads: {backend: result}}`."""
    results = {}
    order = list(backends)
    for setting in thread_settings:
        threads = thread_count(setting)
        results[setting] = {}
        for backend in order:
            print(f"backends.py: {backend}, threads={threads} ...", flush=True)
            result = run_one(
                backend, threads, rounds, steps, warmup, batch_size, timeout
            )
            results[setting][backend] = result
            print(f"  {brief(result)}", flush=True)
        order.reverse()
    return results


def brief(result):
    """One line about one process's result."""
    if "error" in result:
        return f"failed ({result['process_wall_s']:.0f} s): {result['error']}"
    if result["backend"] == "pytorch_loop":
        speeds = {
            f: round(s["images_per_s"], 1)
            for f, s in result["memory_formats"].items()
        }
    else:
        speeds = {
            n: round(s["images_per_s"], 1) for n, s in result["models"].items()
        }
    return (
        f"images/s {speeds}; load {result['loadavg_start'][0]:.1f} -> "
        f"{result['loadavg_end'][0]:.1f}; {result['process_wall_s']:.0f} s"
    )


def _ratio(r, digits=2):
    """`median (min–max)` of a paired ratio."""
    return f"{r['median']:.{digits}f} ({r['min']:.{digits}f}–{r['max']:.{digits}f})"


def _speed(stats):
    """`images/s (best window)` of one model or loop."""
    return (
        f"{stats['images_per_s']:.1f} ({stats['best_window_images_per_s']:.1f})"
    )


def markdown(results, meta):
    """The tables of `docs/performance.md`, as markdown."""
    load = meta["loadavg_1min"]
    lines = [
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} cores), "
        f"Python {meta['python']}; {meta['versions']}. Batch "
        f"{meta['batch_size']}, random float32 32x32x3 images, "
        f"{meta['rounds']} rounds x {meta['steps']} timed steps per model "
        f"after {meta['warmup']} warm-up step(s); whole run "
        f"{meta['wall_s'] / 60:.1f} min; 1-minute load average during the "
        f"run {load['min']:.1f} to {load['max']:.1f} (median "
        f"{load['median']:.1f}) on {meta['cores']} cores.",
        "",
        "images/s: batch / median over rounds of the window medians (best "
        "window in brackets). Ratios: median over rounds of per-round "
        "ratios taken within one process (range in brackets). kmix: "
        "`MixModel` with one `MajorMix`; plain: the same network as a "
        "`keras.Model`; PyTorch: the plain loop of "
        "`benchmarks/torch_resnet32.py` timed in the same process, NCHW "
        "(PyTorch's default) and channels-last.",
    ]
    for setting, by_backend in results.items():
        threads = thread_count(setting)
        lines += [
            "",
            f"Threads: {threads}"
            + (
                " (every core, the frameworks' default)."
                if setting == "all"
                else "."
            ),
            "",
            "| process | plain images/s | kmix images/s | MajorMix overhead "
            "(kmix / plain time) | PyTorch NCHW images/s | PyTorch "
            "channels-last images/s | kmix / PyTorch NCHW (images/s) | "
            "kmix / PyTorch channels-last | load average (start → end) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for backend, r in by_backend.items():
            if "error" in r:
                lines.append(f"| {backend} | failed: {r['error']} |" + " |" * 7)
                continue
            load = f"{r['loadavg_start'][0]:.1f} → {r['loadavg_end'][0]:.1f}"
            if backend == "pytorch_loop":
                f = r["memory_formats"]
                lines.append(
                    "| PyTorch loop alone | | | | "
                    f"{_speed(f['contiguous'])} | "
                    f"{_speed(f['channels_last'])} | | | {load} |"
                )
                continue
            m, v = r["models"], r["speed_vs_pytorch"]
            lines.append(
                f"| Keras {backend} ({r['framework']}) | {_speed(m['plain'])} | "
                f"{_speed(m['mix'])} | {_ratio(r['ratios']['mix/plain'], 3)} | "
                f"{_speed(m['pytorch_loop'])} | "
                f"{_speed(m['pytorch_loop_channels_last'])} | "
                f"{_ratio(v['mix/pytorch_loop'])} | "
                f"{_ratio(v['mix/pytorch_loop_channels_last'])} | {load} |"
            )
    return "\n".join(lines) + "\n"


def metadata(args, wall_s):
    import importlib.metadata as md

    versions = []
    for package in ("keras", "tensorflow", "tensorflow-cpu", "jax", "torch"):
        try:
            versions.append(f"{package} {md.version(package)}")
        except md.PackageNotFoundError:
            pass
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": cores(),
        "python": platform.python_version(),
        "versions": ", ".join(versions),
        "wall_s": wall_s,
        **args,
    }


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.backends) - set(BACKENDS))
    if unknown or not FLAGS.backends:
        raise app.UsageError(
            f"--backends must name some of {BACKENDS}. Received: "
            f"--backends={','.join(FLAGS.backends)}."
        )
    for setting in FLAGS.threads:
        if setting != "all" and not (setting.isdigit() and int(setting) > 0):
            raise app.UsageError(
                "--threads must list positive numbers or `all`. Received: "
                f"--threads={','.join(FLAGS.threads)}."
            )
    for name in ("rounds", "steps", "batch_size"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(
                f"--{name} must be >= 1. Received: --{name}={getattr(FLAGS, name)}."
            )
    args = {
        "rounds": FLAGS.rounds,
        "steps": FLAGS.steps,
        "warmup": FLAGS.warmup,
        "batch_size": FLAGS.batch_size,
    }
    start = time.perf_counter()
    sampler = LoadSampler()
    sampler.start()
    results = run(FLAGS.backends, FLAGS.threads, timeout=FLAGS.timeout, **args)
    meta = metadata(args, time.perf_counter() - start)
    meta["loadavg_1min"] = sampler.stop()
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    with open(os.path.join(FLAGS.out_dir, "backends.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    table = markdown(results, meta)
    with open(os.path.join(FLAGS.out_dir, "backends.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
