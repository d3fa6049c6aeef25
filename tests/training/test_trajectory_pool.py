"""The pool behind ``ddpm distill --reuse``: what it draws, when, and how often each trajectory is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_training.distill.pool import POOL_STEPS, TrajectoryPool


class Teacher:
    """Numbered stand-in trajectories: x holds the trajectory's serial number, target its negative."""

    def __init__(self, labels=False):
        self.drawn, self.sizes, self.labels = 0, [], labels

    def __call__(self, n):
        serial = np.arange(self.drawn, self.drawn + n, dtype=np.float64)
        self.drawn += n
        self.sizes.append(n)
        x = np.broadcast_to(serial[:, None, None, None, None], (n, 2, 1, 3, 3)).copy()
        return x, -x, (serial.astype(np.int64) % 7 if self.labels else None)


def serials(x):
    return x[:, 0, 0, 0, 0].astype(int)


def test_fill_then_one_steps_worth_every_reuse_th_step_over_the_oldest():
    teacher, gen = Teacher(), torch.Generator().manual_seed(0)
    pool = TrajectoryPool(count=4, reuse=3)
    assert pool.size == POOL_STEPS * 3 * 4 == 24
    x, target, labels = pool.batch(0, teacher, gen)
    assert teacher.sizes == [4] * 6 and labels is None  # the fill: six steps' worth, a step's at a time
    assert x.dtype == np.float32 and x.shape == (4, 2, 1, 3, 3) and np.array_equal(target, -x)
    assert len(set(serials(x))) == 4  # no repeats within a batch
    pool.batch(1, teacher, gen)
    pool.batch(2, teacher, gen)
    assert teacher.drawn == 24  # no fresh draws between the R-th steps
    pool.batch(3, teacher, gen)
    assert teacher.drawn == 28 and sorted(serials(pool.x))[:4] == [4, 5, 6, 7]  # 0..3, the oldest, replaced
    for step in range(4, 9):
        pool.batch(step, teacher, gen)
    assert teacher.drawn == 32 and set(serials(pool.x)) == set(range(8, 32))


def test_each_trajectory_is_used_reuse_times_on_average():
    teacher, gen = Teacher(), torch.Generator().manual_seed(1)
    count, reuse, steps = 8, 4, 4000
    pool = TrajectoryPool(count, reuse)
    uses = np.zeros(count * steps // reuse + pool.size, dtype=int)
    for step in range(steps):
        x, _, _ = pool.batch(step, teacher, gen)
        np.add.at(uses, serials(x), 1)
    settled = uses[pool.size : teacher.drawn - pool.size]  # drawn after the fill, and gone before the end
    assert settled.mean() == pytest.approx(reuse, rel=0.02)


def test_labels_travel_with_their_trajectories_and_the_state_round_trips():
    teacher, gen = Teacher(labels=True), torch.Generator().manual_seed(2)
    pool = TrajectoryPool(count=2, reuse=2)
    for step in range(5):
        x, _, labels = pool.batch(step, teacher, gen)
        assert np.array_equal(labels, serials(x) % 7)
    restored = TrajectoryPool(count=2, reuse=2)
    restored.load_state_dict(pool.state_dict())
    state = gen.get_state()
    a = pool.batch(5, teacher, gen)  # a step without a fresh draw: both pools pick from what they hold
    gen.set_state(state)
    b = restored.batch(5, teacher, gen)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="holds 8 trajectories, not 16"):
        TrajectoryPool(count=2, reuse=4).load_state_dict(pool.state_dict())
