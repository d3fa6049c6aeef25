"""One model call's rows split over single-threaded ONNX Runtime sessions that run at the same time.

ONNX Runtime parallelises a call inside each operator (intra-op threads), and the small convolutions of
these models (28x28 and below, 16-256 channels) leave its threads waiting at every operator's end. Two
single-threaded sessions that each take half of a call's rows, run from two Python threads (ORT
releases the GIL), keep both cores busy instead (bench/sample_throughput.py; docs/benchmarks/speed.md,
"Sampling batch and row split").
ONNX Runtime computes each row the same whatever the batch and thread count (tests/runtime check the
outputs bit for bit), so the images do not change.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import contract


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo (what ONNX Runtime's default thread count follows);
    the logical count where that cannot be read."""
    try:
        pairs, package = set(), "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "physical id":
                package = value
            elif key == "core id":
                pairs.add((package, value))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="ddpm-rows")


def run_split(sessions, x: np.ndarray, t: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """eps for all rows: contiguous, nearly equal shares of the rows, one per session, run at once."""
    shares = np.array_split(np.arange(x.shape[0]), len(sessions))
    names = list(contract.OUTPUT_NAMES)
    futures = [
        _pool(len(sessions)).submit(
            session.run, names, contract.feeds(x[rows], t[rows], None if y is None else y[rows])
        )
        for session, rows in zip(sessions, shares, strict=True)
    ]
    return np.concatenate([future.result()[0] for future in futures])
