"""Teacher trajectories kept for reuse: ``ddpm distill --reuse R``.

A distillation step's cost is mostly the teacher's: its few-call solver runs on every trajectory the
student learns from (8 teacher calls per trajectory against one forward and backward of the student
per point). The teacher's solutions do not change during a distillation, so a trajectory is as good a
target the 2nd or 8th time as the 1st. With reuse R, every R-th step draws one step's worth of fresh
trajectories and writes them over the oldest in a pool of 2 R steps' worth; every step takes its batch
from the pool at random, without repeats within the batch. Each trajectory is then learnt from R
times on average, and the student takes about R times as many steps for the teacher's time.

Pure: NumPy arrays in, NumPy arrays out; the random choice comes from the caller's generator, and the
pool's contents are part of the run's state (a resumed run continues from the same pool).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

POOL_STEPS = 2  # the pool holds this many times R steps' worth of trajectories

Draw = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray | None]]


class TrajectoryPool:
    def __init__(self, count: int, reuse: int):
        """``count`` trajectories per step, each used ``reuse`` times on average."""
        self.count, self.reuse = count, reuse
        self.size = POOL_STEPS * reuse * count
        self.x: np.ndarray | None = None  # (size, calls, C, H, W) float32: the student's inputs
        self.target: np.ndarray | None = None  # the same shape: what the student learns there
        self.labels: np.ndarray | None = None  # (size,) int64 for a class-conditional teacher
        self.oldest = 0  # where the next fresh draw goes

    def batch(self, step: int, draw: Draw, generator: torch.Generator):
        """The ``count`` trajectories of step ``step``: ``draw(n)`` gives n fresh ones (x, target, labels)."""
        if self.x is None:
            self._fill(draw)
        elif step % self.reuse == 0:
            x, target, labels = draw(self.count)
            rows = slice(self.oldest, self.oldest + self.count)
            self.x[rows], self.target[rows] = x, target
            if self.labels is not None:
                self.labels[rows] = labels
            self.oldest = (self.oldest + self.count) % self.size
        chosen = torch.randperm(self.size, generator=generator)[: self.count].numpy()
        labels = None if self.labels is None else self.labels[chosen]
        return self.x[chosen], self.target[chosen], labels

    def _fill(self, draw: Draw) -> None:
        parts = [draw(self.count) for _ in range(self.size // self.count)]  # one step's worth at a time
        self.x = np.concatenate([p[0] for p in parts]).astype(np.float32)
        self.target = np.concatenate([p[1] for p in parts]).astype(np.float32)
        self.labels = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        self.oldest = 0

    def state_dict(self) -> dict:
        if self.x is None:
            return {}
        state = {"x": torch.from_numpy(self.x), "target": torch.from_numpy(self.target), "oldest": self.oldest}
        if self.labels is not None:
            state["labels"] = torch.from_numpy(self.labels)
        return state

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.x, self.target = state["x"].numpy().copy(), state["target"].numpy().copy()
        self.labels = state["labels"].numpy().copy() if "labels" in state else None
        self.oldest = int(state["oldest"])
        if len(self.x) != self.size:
            raise ValueError(f"the pool holds {len(self.x)} trajectories, not {self.size}")
