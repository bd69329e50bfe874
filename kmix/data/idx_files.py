"""`read_idx`: one IDX file (the MNIST format) into numpy, without TensorFlow.

Pure numpy and the standard library, so it serves where TensorFlow is not
installed (e.g. `benchmarks/gpu_step100.py`); `kmix.data.sources` reads IDX
directories with it.
"""

import gzip
import math
import os
import zlib

import numpy as np

MAX_IDX_BYTES = 4 * 2**30  # the most data `read_idx` reads from one file
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path, max_bytes=None):
    """Reads one IDX file (the MNIST format), gzipped or not, into numpy.

    The header's shape must match the data, and the data may not exceed
    `max_bytes` (default `MAX_IDX_BYTES`, 4 GiB): the file is read no
    further than its header announces, so a small gzip file cannot make
    kmix decompress gigabytes. A file that is not IDX, not gzip (with a
    `.gz` name), truncated or corrupt raises a `ValueError` naming it.

    Example:

    >>> labels = kmix.data.read_idx(
    ...     "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    ... )
    >>> labels.shape
    (10000,)
    """
    max_bytes = MAX_IDX_BYTES if max_bytes is None else max_bytes
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(4)
            if (
                len(header) < 4
                or header[:2] != b"\x00\x00"
                or header[2] not in _IDX_DTYPES
            ):
                raise ValueError(
                    f"{path!r} is not an IDX file: its header is {header!r}, "
                    f"expected two zero bytes, a type code in "
                    f"{sorted(hex(code) for code in _IDX_DTYPES)} and the rank."
                )
            dtype, rank = _IDX_DTYPES[header[2]], header[3]
            sizes = stream.read(4 * rank)
            if len(sizes) < 4 * rank:
                raise ValueError(
                    f"{path!r} is truncated: its header announces {rank} dimensions "
                    f"but holds {len(sizes) // 4}."
                )
            shape = tuple(int(size) for size in np.frombuffer(sizes, ">u4"))
            expected = (
                math.prod(shape) * dtype.itemsize
            )  # Python ints: no overflow
            if expected > max_bytes:
                raise ValueError(
                    f"{path!r} announces shape {shape} ({expected} bytes of data), "
                    f"more than kmix reads from one IDX file ({max_bytes} bytes, "
                    "kmix.data.idx_files.MAX_IDX_BYTES): it is corrupt, or too large "
                    "to load into memory; split it or pass max_bytes=."
                )
            content = stream.read(
                expected + 1
            )  # one more byte shows trailing data
    except (OSError, EOFError, zlib.error) as error:
        # gzip.BadGzipFile is an OSError.
        raise ValueError(
            f"Cannot read the IDX file {path!r}: {type(error).__name__}: {error}. "
            + (
                "A .gz file must be gzip-compressed and complete; "
                if path.endswith(".gz")
                else ""
            )
            + "download or copy it again (Debian: apt-get install --reinstall "
            "dataset-fashion-mnist)."
        ) from error
    if len(content) != expected:
        raise ValueError(
            f"{path!r} is truncated or corrupt: its header announces shape "
            f"{shape} ({expected} bytes of data), the file holds "
            f"{'more' if len(content) > expected else len(content)}."
        )
    array = np.frombuffer(content, dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)
