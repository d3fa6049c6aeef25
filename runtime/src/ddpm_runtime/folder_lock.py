"""One process per output folder: an exclusive lock on a file inside it, held for the process's life.

``fcntl.flock`` (``msvcrt.locking`` on Windows) belongs to the open file, and the kernel releases it
when the process ends, however it ends: a ``kill -9`` leaves no stale lock to clean up. The file holds
the holder's pid and start time, for the one line a second process gets. The file itself stays in the
folder (removing it would let a process that opened the old file and one that makes a new one both
hold "the" lock); a run that takes back the folder it created removes it with the folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from .errors import UserError
from .files import check_writable_dir, ensure_writable_dir, write_error

LOCK_NAME = ".ddpm.lock"

if sys.platform == "win32":  # pragma: no cover - no Windows machine in CI
    import msvcrt

    def _try_lock(handle) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class FolderLock:
    """``with FolderLock(folder):`` (or ``acquire()`` / ``release()``). Creates the folder if it is
    missing (``created`` says so); a folder another process holds is a UserError naming that process."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.created: list[Path] = []  # folders this lock made, deepest first
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> FolderLock:
        check_writable_dir(self.folder)
        missing = []
        parent = self.folder
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        ensure_writable_dir(self.folder)
        self.created = missing
        for _ in range(10):
            try:
                handle = open(self.path, "a+")  # noqa: SIM115 - held open for the process's life
            except OSError as exc:
                self._take_back()
                raise UserError(write_error(self.path, exc)) from None
            if not _try_lock(handle):
                holder = _read_holder(handle)
                handle.close()
                raise UserError(
                    f"{self.folder}: in use by another process ({holder}); wait for it to end, or choose "
                    "another output folder"
                )
            # The file we locked must still be the one at the path (not one a finishing run removed).
            with contextlib.suppress(OSError):
                if os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino:
                    break
            _unlock(handle)
            handle.close()
        else:  # pragma: no cover - ten replacements in a row
            raise UserError(f"{self.path}: keeps changing under us; is another program removing it?")
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        handle.write(f"pid {os.getpid()}, started {started}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                _unlock(self._handle)
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Release, and take back the lock file and the folders ``acquire`` created if nothing else
        is in them (a run that failed before it wrote anything)."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.release()
        self._take_back()

    def _take_back(self) -> None:
        for folder in self.created:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                return

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(handle) -> str:
    try:
        handle.seek(0)
        text = handle.read(200).strip()
    except OSError:
        text = ""
    return text or "pid unknown"
