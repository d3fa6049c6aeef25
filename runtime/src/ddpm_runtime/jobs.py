"""A sampling job on disk: what it samples and the batches it has finished. A stopped job resumes from
them, and the shards of a job split over processes or machines are merged into the outputs of one run.

    OUT/.ddpm-run-job/job.json            the model file's sha256, the sampling settings, the shard,
                                          and the sha256 of every finished batch file
    OUT/.ddpm-run-job/batch-NNNNNN.npy    uint8 (count, H, W, C): the images of batch N of
                                          generate.batch_ranges, each written atomically when done

A finished batch is trusted only if its file reads back with the shape, dtype and digest recorded for
it; one that does not (cut short, a flipped byte) is sampled again on --resume.

Image i's noise depends only on (seed, i) and the batches are the same ones in every split of the job,
so a resumed job and merged shards hold the very images one uninterrupted run makes. When a job's
outputs are written (ddpm-run sample, or merge for shards), its folder is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import write_atomic, write_error
from .generate import batch_ranges

JOB_FOLDER = ".ddpm-run-job"
JOB_FILE = "job.json"
_BATCH_FILE = re.compile(r"batch-(\d{6})\.npy")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as array jobs count: ``--shard $SLURM_ARRAY_TASK_ID/3``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise UserError(f"--shard must be K/N (shard K of N, 1 <= K <= N), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= index <= count:
            raise UserError(f"--shard {text}: K must be between 1 and N")
        return cls(index, count)

    def batches(self, total: int) -> range:
        """This shard's contiguous block of the job's ``total`` batches (blocks differ by at most one)."""
        return range((self.index - 1) * total // self.count, self.index * total // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def job_spec(
    model_sha256: str, settings, outputs: dict, shard: Shard | None, num_batches: int, image: tuple[int, int, int]
) -> dict:
    """What a job is, as JSON: two runs may share batches only if these are equal (shard aside).
    ``image``: (H, W, C) of every sample, what each batch file must hold."""
    return {
        "format": "ddpm-run-job",
        "version": 1,
        "model_sha256": model_sha256,
        "settings": json.loads(json.dumps(asdict(settings))),  # tuples become lists, as they read back
        "outputs": json.loads(json.dumps(outputs)),  # labels, grid columns and class names of the samples
        "num_batches": num_batches,
        "shard": None if shard is None else [shard.index, shard.count],
        "image": list(image),
    }


def batch_shapes(spec: dict) -> dict[int, tuple]:
    """The shape each batch file of the job must have: (count, H, W, C); H, W, C are None for a job.json
    older than the image entry."""
    settings = spec["settings"]
    image = tuple(spec.get("image") or (None, None, None))
    return {i: (len(r), *image) for i, r in enumerate(batch_ranges(settings["num_images"], settings["batch_size"]))}


def spec_differences(saved: dict, wanted: dict) -> list[str]:
    """What differs between two job specs, in words (the shard is compared by the caller)."""
    names = []
    if saved.get("model_sha256") != wanted.get("model_sha256"):
        names.append("the model file")
    for key in sorted(set(saved.get("settings", {})) | set(wanted.get("settings", {}))):
        if saved.get("settings", {}).get(key) != wanted.get("settings", {}).get(key):
            names.append(key.replace("_", "-"))
    if saved.get("outputs") != wanted.get("outputs") and "labels" not in names:
        names.append("the classes")
    return names


class SamplingJob:
    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.folder = self.out / JOB_FOLDER
        self.spec: dict | None = None  # job.json as written, with its "batches" digests

    def read_spec(self) -> dict | None:
        path = self.folder / JOB_FILE
        if not path.exists():
            return None
        try:
            spec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable sampling job ({exc})") from None
        if not isinstance(spec, dict) or spec.get("format") != "ddpm-run-job" or spec.get("version") != 1:
            raise UserError(f"{path}: not a ddpm-run sampling job of a version this ddpm-run reads")
        self.spec = spec
        return spec

    def start(self, spec: dict) -> None:
        """Create the job folder and its job.json; if that cannot be written, leave no folder behind."""
        created = [p for p in (self.folder, self.out) if not p.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.spec = {**spec, "batches": {}}
            self._write_spec()
        except (OSError, UserError) as exc:
            for path in created:
                with contextlib.suppress(OSError):
                    path.rmdir()
            if isinstance(exc, UserError):
                raise
            raise UserError(write_error(self.folder, exc)) from None

    def _write_spec(self) -> None:
        write_atomic(self.folder / JOB_FILE, lambda f: f.write(json.dumps(self.spec, indent=1).encode()))

    def finished(self) -> set[int]:
        if not self.folder.is_dir():
            return set()
        return {int(m.group(1)) for p in self.folder.iterdir() if (m := _BATCH_FILE.fullmatch(p.name))}

    def batch_path(self, index: int) -> Path:
        return self.folder / f"batch-{index:06d}.npy"

    def save(self, index: int, images: np.ndarray) -> None:
        """The batch's file, then its digest in job.json (a file without one is not trusted)."""
        buffer = io.BytesIO()
        np.save(buffer, images, allow_pickle=False)
        data = buffer.getvalue()
        write_atomic(self.batch_path(index), lambda f: f.write(data))
        if "batches" in self.spec:  # a job started before batch digests keeps its job.json as it was
            self.spec["batches"][str(index)] = hashlib.sha256(data).hexdigest()
        self._write_spec()

    def problem(self, index: int, shape: tuple[int, ...]) -> str | None:
        """Why the finished batch ``index`` cannot be trusted (None: it can): unreadable, another shape
        or dtype than ``shape`` uint8, or bytes that differ from the digest recorded when it was written."""
        path = self.batch_path(index)
        digests = (self.spec or {}).get("batches")  # None: a job.json older than batch digests
        recorded = None if digests is None else digests.get(str(index))
        if digests is not None and recorded is None:
            return "no digest was recorded for it (it was being written when the job stopped)"
        try:
            data = path.read_bytes()
            images = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            return f"unreadable ({' '.join(str(exc).split())[:80]})"
        fits = images.ndim == len(shape) and all(w is None or w == h for h, w in zip(images.shape, shape, strict=True))
        if images.dtype != np.uint8 or not fits:
            return f"holds {images.dtype} {list(images.shape)}, not uint8 {list(shape)}"
        if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
            return "its bytes do not match the digest recorded when it was written"
        return None

    def drop(self, index: int) -> None:
        self.batch_path(index).unlink(missing_ok=True)
        (self.spec or {}).get("batches", {}).pop(str(index), None)

    def load(self, index: int) -> np.ndarray:
        path = self.batch_path(index)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read this finished batch ({exc}); delete it to sample it again") from None

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def open_job(out: str | os.PathLike, spec: dict, resume: bool) -> SamplingJob:
    """The job ``spec`` describes in ``out``: a new one, or with ``resume`` the stopped one it holds, which
    must be the same job (model, options, shard). Without ``resume`` a stopped job there is refused."""
    job = SamplingJob(out)
    saved = job.read_spec()
    if saved is None:
        job.start(spec)
        return job
    if not resume:
        raise UserError(
            f"{out}: holds a stopped sampling job ({len(job.finished())} of {saved['num_batches']} batches done); "
            f"pass --resume to continue it with the same options, delete {job.folder} to drop it, or choose "
            "another --out"
        )
    differences = spec_differences(saved, spec) + (["--shard"] if saved["shard"] != spec["shard"] else [])
    if differences:
        raise UserError(
            f"{out}: its stopped job differs in {', '.join(differences)}; --resume continues a job with the "
            "same model and options"
        )
    return job


def resample_damaged(job: SamplingJob, shapes: dict[int, tuple[int, ...]]) -> dict[int, str]:
    """Drop the finished batches among ``shapes`` (index -> expected shape) that cannot be trusted, so
    that they are sampled again; returns why, per batch."""
    damaged = {}
    for index in sorted(job.finished() & set(shapes)):
        reason = job.problem(index, shapes[index])
        if reason is not None:
            damaged[index] = reason
            job.drop(index)
    return damaged


def job_images(jobs: list[SamplingJob], spec: dict, shapes: dict[int, tuple[int, ...]]) -> np.ndarray:
    """Every batch of the job ``spec`` describes, in order, from whichever of ``jobs`` finished it,
    each checked against its expected shape (``shapes``) and recorded digest."""
    by_batch = {index: job for job in jobs for index in job.finished()}
    images = []
    for index in range(spec["num_batches"]):
        job = by_batch[index]
        reason = job.problem(index, shapes[index])
        if reason is not None:
            raise UserError(
                f"{job.batch_path(index)}: damaged ({reason}); run its job again with --resume to sample it again"
            )
        images.append(job.load(index))
    return np.concatenate(images)


def merge_shards(folders: list[Path]) -> tuple[dict, list[SamplingJob]]:
    """The shards' common spec and their jobs, ordered by shard index, after checking that they are the
    shards 1..N of one job, every one complete."""
    if not folders:
        raise UserError("merge needs the output folders of the shards")
    jobs = [SamplingJob(folder) for folder in folders]
    specs = []
    for job in jobs:
        spec = job.read_spec()
        if spec is None:
            raise UserError(f"{job.out}: holds no sampling job (no {JOB_FOLDER}/{JOB_FILE})")
        if spec["shard"] is None:
            raise UserError(f"{job.out}: is not a shard (sampled without --shard); it writes its own outputs")
        specs.append(spec)
    first = specs[0]
    for job, spec in zip(jobs, specs, strict=True):
        differences = spec_differences(first, spec)
        if differences or spec["shard"][1] != first["shard"][1]:
            what = ", ".join(differences) or "the number of shards"
            raise UserError(f"{job.out}: is a shard of another job than {jobs[0].out} ({what} differ)")
    count = first["shard"][1]
    order = sorted(range(len(jobs)), key=lambda i: specs[i]["shard"][0])
    indices = [specs[i]["shard"][0] for i in order]
    if indices != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        problem = f"missing shard(s) {', '.join(map(str, missing))}" if missing else ""
        problem += ("; " if problem and repeated else "") + (
            f"shard(s) {', '.join(map(str, repeated))} given twice" if repeated else ""
        )
        raise UserError(f"merge needs each of the {count} shards once: {problem}")
    for i in order:
        shard = Shard(*specs[i]["shard"])
        missing = set(shard.batches(first["num_batches"])) - jobs[i].finished()
        if missing:
            raise UserError(
                f"{jobs[i].out}: shard {shard} is not finished ({len(missing)} batch(es) to go; "
                "run it again with --resume)"
            )
    return {**first, "shard": None}, [jobs[i] for i in order]
