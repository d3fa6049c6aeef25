"""The checks of an exporter's output path before any work: shared by every exporter, torch-free."""

from __future__ import annotations

import os
from pathlib import Path

from ddpm_runtime.files import ensure_writable_dir

from .errors import ExportError


def prepare_output(out: str | os.PathLike, example_name: str, source: os.PathLike, overwrite: bool = False) -> Path:
    """Before exporting: ``out`` must not be the checkpoint it is made from (not even with ``overwrite``),
    nor a folder; an existing file is replaced only with ``overwrite``; and its folder must be writable."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name such as {out / example_name}")
    if out.exists() and os.path.samefile(out, source):
        raise ExportError(f"{out}: is the checkpoint being exported; choose another -o")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ExportError(f"{out}: exists (pass --overwrite to replace it)")
    ensure_writable_dir(out.parent)
    return out
