"""Write a sampling run's files into a folder, all or nothing.

    OUT/grid.png          all images tiled
    OUT/images/NNNNNN.png one PNG per image
    OUT/samples.npz       uint8 (N, H, W, C) under arr_0 (the layout guided-diffusion's evaluator reads)
    OUT/samples.csv       with --csv: the seed's generated-data CSV, pixel0..pixelK per row (HWC order)

Everything is written into a temporary sibling folder that is renamed onto OUT at the end, so an
interrupted or failed run leaves OUT as it was.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import current_umask
from .images import make_grid


def check_output_folder(out: str | os.PathLike, overwrite: bool) -> Path:
    """Before sampling: OUT must be new or empty (or --overwrite), and its parent writable."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: folder is not empty (choose another --out, or pass --overwrite)")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=parent, prefix=f".{out.name}.check-"):
            pass
    except OSError as exc:
        raise UserError(f"{out}: output folder cannot be written ({exc.strerror or exc})") from None
    return out


def csv_bytes(images: np.ndarray) -> bytes:
    flat = images.reshape(len(images), -1)
    text = io.StringIO()
    text.write(",".join(f"pixel{i}" for i in range(flat.shape[1])) + "\n")
    np.savetxt(text, flat, fmt="%d", delimiter=",")
    return text.getvalue().encode()


def write_samples(out: str | os.PathLike, images: np.ndarray, write_csv: bool = False) -> Path:
    from PIL import Image

    out = Path(out)
    staging = Path(tempfile.mkdtemp(dir=out.resolve().parent, prefix=f".{out.name}.partial-"))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700; OUT should look like any folder
    try:
        (staging / "images").mkdir()
        grey = images.shape[3] == 1
        for i, image in enumerate(images):
            Image.fromarray(image[:, :, 0] if grey else image).save(staging / "images" / f"{i:06d}.png")
        grid = make_grid(images)
        Image.fromarray(grid[:, :, 0] if grey else grid).save(staging / "grid.png")
        np.savez(staging / "samples.npz", arr_0=images)
        if write_csv:
            (staging / "samples.csv").write_bytes(csv_bytes(images))
        _replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _replace_folder(staging: Path, out: Path) -> None:
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.resolve().parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "previous")
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
