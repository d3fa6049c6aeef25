"""`ddpm train` (run by torchrun in tests) whose rank 0 finds its disk full at its second checkpoint:
every fsync during that write fails with ENOSPC, as on a disk that filled up during training."""

from __future__ import annotations

import errno
import os

import ddpm_runtime.files
from ddpm_training.cli import main
from ddpm_training.train.run_folder import RunFolder

real_write, real_fsync, calls = RunFolder.write, os.fsync, []


def full_disk_fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def write(self, trainer):
    calls.append(trainer.step)
    if len(calls) == 2 and os.environ.get("RANK") == "0":
        ddpm_runtime.files.os.fsync = full_disk_fsync
        try:
            return real_write(self, trainer)
        finally:
            ddpm_runtime.files.os.fsync = real_fsync
    return real_write(self, trainer)


RunFolder.write = write
main()
