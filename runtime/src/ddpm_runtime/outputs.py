"""Write a sampling run's files into a folder, without touching anything else there.

    OUT/grid.png          all images tiled
    OUT/images/NNNNNN.png one PNG per image
    OUT/samples.npz       uint8 (N, H, W, C) under arr_0 (the layout guided-diffusion's evaluator reads);
                          with --class also int64 (N,) "labels": the class each image was asked to be,
                          and "class_names": the model's names of classes 0..K-1
    OUT/samples.csv       with --csv: the seed's generated-data CSV, pixel0..pixelK per row (HWC order)

These four names are the only things ``ddpm-run sample`` ever writes or replaces. Other files in OUT
(a checkpoint, the model being sampled) are never touched. Replacing an earlier run's outputs needs
``--overwrite``. Everything is written into a temporary folder first and moved into place at the end,
so a failed or interrupted run leaves the earlier outputs as they were.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import current_umask, write_error
from .images import make_grid

OUTPUT_NAMES = ("grid.png", "images", "samples.npz", "samples.csv")
_IMAGE_FILE = re.compile(r"\d{6}\.png")


def check_output_folder(out: str | os.PathLike, overwrite: bool, inputs: Iterable[os.PathLike] = ()) -> Path:
    """Before sampling: refuse what would replace an input, an earlier run's outputs without
    ``overwrite``, or files ddpm-run did not write; and prove the folder can be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    targets = [out / name for name in OUTPUT_NAMES]
    for source in inputs:
        source = Path(source).resolve()
        for target in targets:
            if source == target.resolve() or target.resolve() in source.parents:
                raise UserError(f"{out}: writing here would replace the input {source}; choose another --out")
    if out.is_dir():
        present = [t.name for t in targets if t.exists() or t.is_symlink()]
        if present and not overwrite:
            raise UserError(
                f"{out}: holds {', '.join(present)} from an earlier run (choose another --out, or pass "
                "--overwrite to replace them; other files there are never touched)"
            )
        images = out / "images"
        if images.is_symlink() or (images.exists() and not images.is_dir()):
            raise UserError(f"{images}: is not a folder of ddpm-run images; refusing to replace it")
        if images.is_dir():
            foreign = [p.name for p in images.iterdir() if not (_IMAGE_FILE.fullmatch(p.name) and p.is_file())]
            if foreign:
                raise UserError(
                    f"{images}: holds files ddpm-run did not write ({', '.join(sorted(foreign)[:3])}); "
                    "refusing to replace it"
                )
        for target in targets:
            if target.name != "images" and target.is_dir():
                raise UserError(f"{target}: is a folder; refusing to replace it")
    folder = out if out.is_dir() else out.resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".ddpm-run-check-"):
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


def write_samples(
    out: str | os.PathLike,
    images: np.ndarray,
    write_csv: bool = False,
    labels: Sequence[int] | None = None,
    columns: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> Path:
    """Write the outputs (after ``check_output_folder``): into a new folder by one rename, or into an
    existing one by moving each of OUTPUT_NAMES into place, the earlier ones out of the way first.

    ``labels``: the requested class of each image, stored in samples.npz with the model's
    ``class_names``; ``columns``: images per grid row (one class per row); default: a square grid."""
    from PIL import Image

    out = Path(out)
    exists = out.is_dir()
    home = out if exists else out.resolve().parent
    try:
        staging = Path(tempfile.mkdtemp(dir=home, prefix=".ddpm-run-partial-"))
    except OSError as exc:
        raise UserError(write_error(out, exc)) from None
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700; OUT should look like any folder
        (staging / "images").mkdir()
        grey = images.shape[3] == 1
        for i, image in enumerate(images):
            Image.fromarray(image[:, :, 0] if grey else image).save(staging / "images" / f"{i:06d}.png")
        grid = make_grid(images, ncols=columns)
        Image.fromarray(grid[:, :, 0] if grey else grid).save(staging / "grid.png")
        if labels is None:
            np.savez(staging / "samples.npz", arr_0=images)
        else:
            names = {} if class_names is None else {"class_names": np.array(class_names, dtype=str)}
            np.savez(staging / "samples.npz", arr_0=images, labels=np.asarray(labels, dtype=np.int64), **names)
        if write_csv:
            (staging / "samples.csv").write_bytes(csv_bytes(images))
        if exists:
            _swap_outputs(staging, out)
        else:
            os.replace(staging, out)
    except OSError as exc:  # a full disk while staging: the earlier outputs are untouched, the staging goes
        written = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
        raise UserError(write_error(out, exc, written)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _swap_outputs(staging: Path, out: Path) -> None:
    """Move the earlier outputs into ``staging/.old`` and the new ones into ``out``; on failure, put back."""
    old = staging / ".old"
    old.mkdir()
    moved: list[str] = []
    try:
        for name in OUTPUT_NAMES:
            if (out / name).exists() or (out / name).is_symlink():
                os.replace(out / name, old / name)
                moved.append(name)
        for name in OUTPUT_NAMES:
            if (staging / name).exists():
                os.replace(staging / name, out / name)
    except BaseException:
        for name in OUTPUT_NAMES:
            if name in moved:
                if (out / name).is_dir():
                    shutil.rmtree(out / name, ignore_errors=True)
                os.replace(old / name, out / name)
        raise
