"""Atomic file output: a reader never sees a half-written file, and a failure leaves none behind."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import UserError


@contextlib.contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder to write (and check) the output; when the block ends
    without an exception, fsync it and ``os.replace`` it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was; an ``OSError`` of the
    writing (a full disk, a quota, an I/O error) becomes one UserError naming ``path`` and the cause.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(write_error(path.parent, exc)) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; the result should look like any other file
        os.close(fd)
        yield Path(tmp_name)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        written = os.path.getsize(tmp_name) if os.path.exists(tmp_name) else None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise UserError(write_error(path, exc, written)) from None
        raise
    _fsync_dir(path.parent)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10e6 else f"{size / 1e6:.0f} MB"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the file system that holds ``path`` (or would: its nearest existing ancestor)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def write_error(path: str | os.PathLike, exc: OSError, needed: int | None = None) -> str:
    """One line for an OSError while writing ``path``: "PATH: no space left on device (needs about 19 MB,
    3.1 MB free)" for a full disk or quota, else "PATH: cannot write (the OS's reason)". ``needed``:
    the output's size where known (or at least what had been written when it failed)."""
    if exc.errno in NO_SPACE:
        free = free_bytes(path)
        parts = [f"needs about {megabytes(needed)}" if needed else None]
        parts.append(None if free is None else f"{megabytes(free)} free")
        detail = ", ".join(p for p in parts if p)
        return f"{path}: no space left on device" + (f" ({detail})" if detail else "")
    return f"{path}: cannot write ({exc.strerror or exc})"


def check_free_space(path: str | os.PathLike, needed: int) -> None:
    """Before writing ``needed`` bytes to ``path`` (beside the file it replaces): refuse, naming both
    sizes, if the file system cannot hold them, so no work is spent on an output that cannot be kept."""
    free = free_bytes(path)
    if free is not None and free < needed:
        raise UserError(f"{path}: no space left on device (needs about {megabytes(needed)}, {megabytes(free)} free)")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` atomically when the block succeeds (see ``staged_file``)."""
    with staged_file(path) as staged, open(staged, "wb") as handle:
        yield handle


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets us open a folder.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    with atomic_output(path) as handle:
        write(handle)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (H, W, C) or (H, W) uint8 array as PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    write_atomic(path, lambda handle: Image.fromarray(image).save(handle, format="PNG"))


def check_writable_dir(folder: str | os.PathLike) -> Path:
    """Prove ``folder`` could be created and written, creating nothing: it is a writable folder, or it
    does not exist and its nearest existing ancestor is one. UserError otherwise."""
    folder = Path(folder)
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{folder}: output folder cannot be written ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: output folder cannot be written (no write permission in {probe})")
    return folder


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be created in it; UserError otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise UserError(write_error(folder, exc)) from None
        raise UserError(f"{folder}: output folder cannot be written ({exc.strerror or exc})") from None
    return folder
