"""A plain PyTorch training loop of the CIFAR ResNet-32, for speed comparisons.

The reference a PyTorch user would otherwise pick: the CIFAR ResNet-32 of
the long-tail codebases (He et al., CVPR 2016: a 3x3 stem with 16 channels,
3 stages of 5 basic blocks with 16/32/64 channels, the parameter-free
"option A" shortcut, global average pooling, a linear classifier), written
here for this benchmark to match `kmix.models.resnet_cifar.resnet32` layer
for layer (bias-free He-normal convolutions, batch normalization). It is
trained by the usual eager loop: `zero_grad`, forward, cross-entropy,
`backward`, `SGD(lr=0.1, momentum=0.9).step()`, in float32, on one batch of
the random 32x32x3 images and step-imbalanced labels that
`benchmarks/step_overhead.py` feeds the Keras models (`random_batch`, same
seed), already in memory as tensors.

Memory format: `contiguous` (NCHW, PyTorch's default and what the
long-tail codebases use) and, with `--memory_formats=channels_last`, the
same loop with model and batch in channels-last (NHWC) layout, which
oneDNN's CPU convolutions prefer; several formats are timed alternately,
window by window.

Threads: `torch.set_num_threads(--threads)` (default: every core the
process may use, as TensorFlow's and XLA's CPU pools use; `step_overhead.py`
sets the same number on the Keras backends). Inter-op threads stay at
PyTorch's default (the loop has no inter-op parallelism).

Each timed step ends with `loss.item()`. Warm-up steps are excluded; the
step time is the median over `--windows` windows of the median of their
`--steps` steps, and `images/s = batch_size / step time`.

Usage:

    python benchmarks/torch_resnet32.py [--windows=3] [--steps=3] [--warmup=2]
    python benchmarks/torch_resnet32.py --memory_formats=contiguous \\
        --memory_formats=channels_last
    python benchmarks/torch_resnet32.py --json_out=/tmp/torch.json
"""

import json
import os
import time

from absl import app
from absl import flags

MEMORY_FORMATS = ("contiguous", "channels_last")
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("windows", 3, "Timed windows.")
    flags.DEFINE_integer("steps", 3, "Timed steps per window.")
    flags.DEFINE_integer("warmup", 2, "Untimed steps before timing.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_integer(
        "threads", 0, "torch.set_num_threads; 0: every core available."
    )
    flags.DEFINE_multi_enum(
        "memory_formats",
        ["contiguous"],
        list(MEMORY_FORMATS),
        "Memory formats to time, alternately: contiguous (NCHW, PyTorch's "
        "default) and/or channels_last (NHWC).",
    )
    flags.DEFINE_string("json_out", None, "Also write the result here.")


def build_resnet32(num_classes=10):
    """Returns the CIFAR ResNet-32 as a `torch.nn.Module` (NCHW input)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class BasicBlock(nn.Module):
        def __init__(self, in_channels, channels, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(
                in_channels, channels, 3, stride, padding=1, bias=False
            )
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.stride = stride
            self.extra = channels - in_channels

        def shortcut(self, x):
            if self.stride == 1 and self.extra == 0:
                return x
            x = x[:, :, :: self.stride, :: self.stride]
            half = self.extra // 2
            return F.pad(x, (0, 0, 0, 0, half, self.extra - half))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + self.shortcut(x))

    class ResNet32(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            blocks, channels = [], 16
            for stage, width in enumerate((16, 32, 64)):
                for block in range(5):
                    stride = 2 if stage > 0 and block == 0 else 1
                    blocks.append(BasicBlock(channels, width, stride))
                    channels = width
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(channels, num_classes)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight)

        def forward(self, x):
            x = F.relu(self.bn(self.conv(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return ResNet32(num_classes)


def make_loop(x, y, memory_format="contiguous", seed=0, device=None):
    """Builds model and optimizer; returns `step()`, which trains one step.

    Args:
        x: NHWC float32 images (NumPy), converted once to an NCHW tensor.
        y: integer labels (NumPy).
        memory_format: `"contiguous"` (NCHW) or `"channels_last"`.
        seed: seed of the weights.
        device: torch device; default CUDA when available (where Keras'
            PyTorch backend trains too), else the CPU.

    Returns:
        A function that runs one training step and returns its seconds.
    """
    import torch
    from torch.nn import functional as F

    if memory_format not in MEMORY_FORMATS:
        raise ValueError(
            f"Argument `memory_format` must be one of {MEMORY_FORMATS}. "
            f"Received: memory_format={memory_format!r}."
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    model = build_resnet32().to(device)
    inputs = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device)
    labels = torch.from_numpy(y.astype("int64")).to(device)
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step():
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        loss.item()
        return time.perf_counter() - start

    return step


def measure(
    windows=3,
    steps=3,
    warmup=2,
    batch_size=128,
    threads=0,
    memory_formats=("contiguous",),
    seed=0,
):
    """Times the loop in each memory format, alternating the windows.

    Returns:
        `{memory_format: {"window_medians_s", "median_s", "images_per_s"}}`.
    """
    import numpy as np
    import torch
    from step_overhead import default_threads
    from step_overhead import random_batch

    torch.set_num_threads(threads or default_threads())
    x, y = random_batch(batch_size, seed=seed)
    loops = {f: make_loop(x, y, f, seed) for f in memory_formats}
    for step in loops.values():
        for _ in range(warmup):
            step()
    window_medians = {memory_format: [] for memory_format in loops}
    names = list(loops)
    for w in range(windows):
        for memory_format in names[w % len(names) :] + names[: w % len(names)]:
            step = loops[memory_format]
            window_medians[memory_format].append(
                float(np.median([step() for _ in range(steps)]))
            )
    results = {}
    for memory_format, medians in window_medians.items():
        median = float(np.median(medians))
        results[memory_format] = {
            "window_medians_s": medians,
            "median_s": median,
            "images_per_s": batch_size / median,
            "best_window_images_per_s": batch_size / min(medians),
        }
    return results


def run(
    windows=3,
    steps=3,
    warmup=2,
    batch_size=128,
    threads=0,
    memory_formats=("contiguous",),
):
    """Measures, prints a report and returns the result dict."""
    import torch

    load_start = os.getloadavg()
    start = time.perf_counter()
    loops = measure(
        windows, steps, warmup, batch_size, threads, tuple(memory_formats)
    )
    result = {
        "backend": "pytorch_loop",
        "framework": f"torch {torch.__version__}",
        "threads": {
            "num_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
        },
        "batch_size": batch_size,
        "windows": windows,
        "steps": steps,
        "warmup": warmup,
        "data": "random float32 32x32x3 in [0, 1), step-imbalanced labels",
        "loadavg_start": list(load_start),
        "loadavg_end": list(os.getloadavg()),
        "wall_s": time.perf_counter() - start,
        "memory_formats": loops,
    }
    print(
        f"pytorch_loop ({result['framework']}, threads {result['threads']}); "
        f"batch {batch_size}; {windows} windows x {steps} steps after "
        f"{warmup} warm-up steps; load average {load_start[0]:.2f} -> "
        f"{result['loadavg_end'][0]:.2f}"
    )
    for memory_format, stats in loops.items():
        print(
            f"{memory_format:>13}: median {1000 * stats['median_s']:8.2f} ms/step "
            f"({stats['images_per_s']:.0f} images/s)"
        )
    return result


def main(argv):
    del argv
    for name in ("windows", "steps", "batch_size"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(
                f"--{name} must be >= 1. Received: --{name}={getattr(FLAGS, name)}."
            )
    if FLAGS.threads < 0:
        raise app.UsageError(
            f"--threads must be >= 0. Received: --threads={FLAGS.threads}."
        )
    result = run(
        FLAGS.windows,
        FLAGS.steps,
        FLAGS.warmup,
        FLAGS.batch_size,
        FLAGS.threads,
        FLAGS.memory_formats,
    )
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
