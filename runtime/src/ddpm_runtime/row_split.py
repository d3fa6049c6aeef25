"""One model call's rows split over single-threaded ONNX Runtime sessions that run at the same time.

ONNX Runtime parallelises a call inside each operator (intra-op threads), and the small convolutions of
these models (28x28 and below, 16-256 channels) leave its threads waiting at every operator's end. Two
single-threaded sessions that each take half of a call's rows, run from two Python threads (ORT
releases the GIL), keep both cores busy instead (bench/sample_throughput.py; docs/benchmarks/speed.md,
"Sampling batch and row split").
Each session also runs its share a few rows at a time (``CALL_ROWS``): a call's activations then stay
in the core's own cache, where a call of many rows streams them through memory at every operator
(docs/benchmarks/speed.md, "Rows per call").
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


CALL_ROWS = 4  # the most rows one session runs in one call: ddpm-run's default batch of 8 on two cores


def shares(rows: int, sessions: int) -> list[np.ndarray]:
    """Contiguous, nearly equal shares of ``rows`` rows, one per session (callers give at most ``rows``
    sessions, so none is empty)."""
    return np.array_split(np.arange(rows), sessions)


def in_calls(share: np.ndarray) -> list[np.ndarray]:
    """One session's share of the rows, cut into calls of at most ``CALL_ROWS`` rows."""
    return [share[first : first + CALL_ROWS] for first in range(0, len(share), CALL_ROWS)]


def run_in_calls(run, share: np.ndarray) -> np.ndarray:
    """``run(rows)`` over a share's calls, one after another, its outputs joined along the first axis."""
    parts = [run(rows) for rows in in_calls(share)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def run_split(sessions, x: np.ndarray, t: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """eps for all rows: a share of the rows per session, run at once, each share in calls of a few rows."""
    names = list(contract.OUTPUT_NAMES)

    def eps(session, rows):
        return session.run(names, contract.feeds(x[rows], t[rows], None if y is None else y[rows]))[0]

    pool = _pool(len(sessions))
    futures = [
        pool.submit(run_in_calls, lambda rows, session=session: eps(session, rows), share)
        for session, share in zip(sessions, shares(x.shape[0], len(sessions)), strict=True)
    ]
    return np.concatenate([future.result() for future in futures])
