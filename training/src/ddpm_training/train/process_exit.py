"""How a process that joined a torch.distributed process group ends.

DistributedDataParallel keeps the gloo process group alive after ``destroy_process_group`` (its worker
threads are still there afterwards), and a worker thread that finishes a collective drops the tensors
it held, which takes the GIL when a tensor has a Python object. If that happens while the interpreter
is finalizing, Python ends the thread with ``pthread_exit``, whose unwinding crosses a ``noexcept``
frame in gloo's run loop: ``terminate called without an active exception``, SIGABRT, and torchrun
reports the whole run failed although every file was written. A loaded machine makes the thread late
enough to lose that race. So such a process skips finalization: after everything it writes is closed
(checkpoints and grids are written atomically and closed before the run returns), it flushes its
streams and leaves with ``os._exit``. Torch-free, so that ``ddpm --help`` does not import torch.
"""

from __future__ import annotations

import os
import sys

_joined = False


def mark_joined() -> None:
    """Called by the code that joins a process group: this process ends through ``hard_exit``."""
    global _joined
    _joined = True


def joined() -> bool:
    return _joined


def exit_code(exc: SystemExit) -> int:
    """What the interpreter would exit with for ``exc`` (None is 0; a message is printed, then 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def hard_exit(code: int) -> None:
    """Flush the streams and end the process with ``code``, without interpreter finalization."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
