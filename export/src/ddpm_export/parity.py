"""The parity gate: an exported model against the eager PyTorch model on the same inputs.

Pure: two callables ``f(x, t) -> eps`` (``f(x, t, y)`` for a class-conditional model) on NumPy
arrays go in, a report comes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EpsFn = Callable[..., np.ndarray]
BATCH_SIZES = (1, 3, 64)


@dataclass(frozen=True)
class ParityRow:
    batch: int
    timesteps: str  # a description: "0", "T/2 = 500", "per row"; with ", y mixed" / ", y none" for labels
    max_abs: float  # max |exported - reference|
    max_rel: float  # max_abs / max |reference|: the error relative to the output's scale

    def passed(self, atol: float) -> bool:
        return bool(self.max_abs <= atol)  # NaN fails too


@dataclass(frozen=True)
class ParityReport:
    rows: tuple[ParityRow, ...]
    atol: float

    @property
    def passed(self) -> bool:
        return all(row.passed(self.atol) for row in self.rows)

    @property
    def worst(self) -> ParityRow:
        return max(self.rows, key=lambda r: np.nan_to_num(r.max_abs, nan=np.inf))

    def table(self) -> str:
        width = max(16, *(len(row.timesteps) for row in self.rows))
        lines = [f"{'batch':>5}  {'timesteps':<{width}} {'max abs':>10}  {'max rel':>10}  ok"]
        for row in self.rows:
            mark = "yes" if row.passed(self.atol) else "NO"
            lines.append(f"{row.batch:>5}  {row.timesteps:<{width}} {row.max_abs:10.2e}  {row.max_rel:10.2e}  {mark}")
        lines.append(f"tolerance: max abs <= {self.atol:g}")
        return "\n".join(lines)


def timestep_cases(num_timesteps: int, batch: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """t = 0, 1, T/2, T-1 for every row, and a different (fractional) t in [0, T-1] per row."""
    cases = [
        (str(t) if t < 2 else f"{'T/2' if t == num_timesteps // 2 else 'T-1'} = {t}", t)
        for t in (0, 1, num_timesteps // 2, num_timesteps - 1)
    ]
    rows = [(name, np.full((batch,), t, dtype=np.float32)) for name, t in cases]
    per_row = rng.uniform(0, num_timesteps - 1, batch).astype(np.float32)
    per_row[: min(batch, 2)] = np.floor(per_row[: min(batch, 2)])  # integers as well as fractions
    rows.append(("per row", per_row))
    return rows


def label_cases(num_classes: int, batch: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """For a conditional model: rows of different classes mixed with "no class" rows (index
    num_classes), and every row "no class" (what guidance's unconditional half sends)."""
    mixed = rng.integers(0, num_classes + 1, batch)
    mixed[0] = num_classes if batch > 1 else rng.integers(0, num_classes)
    if batch > 1:
        mixed[1] = rng.integers(0, num_classes)  # at least one real class and one "no class" row
    return [("y mixed", mixed.astype(np.int64)), ("y none", np.full((batch,), num_classes, dtype=np.int64))]


def check_parity(
    reference: EpsFn,
    candidate: EpsFn,
    image_shape: tuple[int, int, int],
    num_timesteps: int,
    atol: float,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    seed: int = 0,
    num_classes: int = 0,
) -> ParityReport:
    """Every batch size x timestep case; for a conditional model (``num_classes`` > 0) each case with
    mixed labels, and the per-row case also with every row "no class"."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch in batch_sizes:
        x = rng.standard_normal((batch, *image_shape)).astype(np.float32)
        cases = []
        for name, t in timestep_cases(num_timesteps, batch, rng):
            if not num_classes:
                cases.append((name, (x, t)))
                continue
            labels = label_cases(num_classes, batch, rng)
            cases.append((f"{name}, {labels[0][0]}", (x, t, labels[0][1])))
            if name == "per row":
                cases.append((f"{name}, {labels[1][0]}", (x, t, labels[1][1])))
        for name, inputs in cases:
            expected = np.asarray(reference(*inputs), dtype=np.float64)
            got = np.asarray(candidate(*inputs), dtype=np.float64)
            if got.shape != expected.shape:
                rows.append(ParityRow(batch, name, float("nan"), float("nan")))
                continue
            max_abs = float(np.max(np.abs(got - expected)))
            scale = float(np.max(np.abs(expected)))
            rows.append(ParityRow(batch, name, max_abs, max_abs / scale if scale > 0 else max_abs))
    return ParityReport(tuple(rows), atol)
