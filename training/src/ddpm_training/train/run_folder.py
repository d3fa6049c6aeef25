"""The files of a training run folder, all written atomically, by the main process only.

OUT/checkpoint.pt          latest checkpoint (see checkpoint.py)
OUT/checkpoint-STEP.pt     the ones before it that --keep-last keeps
OUT/.ddpm.lock             held by the process writing the folder (ddpm_runtime.folder_lock)
OUT/config.json            model, schedule and training settings, for people and scripts
OUT/loss.csv               one row per log interval
OUT/loss.png               the loss curve
OUT/samples/step-NNNNNNN.png  EMA samples (ddpm-run's default sampler, same noise every time)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

from ddpm_runtime.files import check_writable_dir, ensure_writable_dir, write_atomic, write_png
from ddpm_runtime.folder_lock import FolderLock

from ..errors import TrainingError
from .checkpoint import CHECKPOINT_NAME, KEPT_NAME, kept_checkpoints, kept_name, load_checkpoint, save_checkpoint
from .plots import loss_curve_image
from .preview import preview_grid
from .trainer import LogRecord, Trainer

RUN_FILES = (".checkpoint.pt.", ".config.json.", ".loss.csv.", ".loss.png.")  # prefixes of their temporaries
CSV_FIELDS = ("step", "epoch", "loss", "lr", "images_per_sec", "elapsed_s")


class RunFolder:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.lock = FolderLock(self.folder)
        self.written_step: int | None = None  # the step of checkpoint.pt (a resumed run's, then each written)
        self.created: list[Path] = []  # the folders prepare() made, deepest first

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    def check(self, resume: Path | None) -> None:
        """Before anything is created: refuse a folder that would lose an earlier run or cannot be written.

        Its checkpoint may only be replaced by the run it holds: ``resume`` must be that very file."""
        existing = self.checkpoint_path
        if existing.exists() and not (resume is not None and self.holds(resume)):
            raise TrainingError(
                f"{self.checkpoint_path}: a run already lives here; pass --resume {self.checkpoint_path} "
                "to continue it, or choose another --out"
            )
        check_writable_dir(self.folder / "samples")

    def holds(self, checkpoint: Path) -> bool:
        """Whether ``checkpoint`` is this folder's run: its checkpoint.pt or one of the earlier ones it keeps."""
        checkpoint = Path(checkpoint)
        if self.checkpoint_path.exists() and os.path.samefile(self.checkpoint_path, checkpoint):
            return True
        return bool(KEPT_NAME.fullmatch(checkpoint.name)) and checkpoint.resolve().parent == self.folder.resolve()

    def prepare(self) -> list[Path]:
        """Create the folders (after every input has been validated) and prove they can be written;
        returns the folders this created, deepest first (``remove_empty`` takes them back)."""
        created = [p for p in (self.folder / "samples", self.folder) if not p.exists()]
        ensure_writable_dir(self.folder)
        ensure_writable_dir(self.folder / "samples")
        self.created = created
        return created

    @staticmethod
    def remove_empty(created: list[Path]) -> None:
        """After a run that failed before writing anything (a full disk, say): no empty folders stay."""
        for path in created:
            try:
                path.rmdir()  # only if empty
            except OSError:
                return

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete what a killed run left half-written: our own ``.NAME.*.tmp`` files (see files.staged_file)."""
        stale = [p for name in (*RUN_FILES, "samples/.step-") for p in self.folder.glob(f"{name}*.tmp")]
        stale = [p for p in stale if p.name.startswith(".") and p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def preview_path(self, step: int) -> Path:
        return self.folder / "samples" / f"step-{step:07d}.png"

    def write_preview(self, trainer: Trainer) -> Path:
        """The sample grid of the trainer's current step (EMA weights, the same x_T every time)."""
        preview = trainer.objective.preview()
        grid = preview_grid(
            trainer.eps_model(),
            trainer.model_config,
            trainer.schedule,
            trainer.config.num_preview,
            trainer.config.preview_steps,
            seed=trainer.config.seed,
            device=trainer.device,
            default=preview.default,
            timesteps=preview.timesteps,
            # a model trained without label dropout has no unconditional half to guide with
            guidance_scale=0.0 if trainer.classes is not None and trainer.classes.label_dropout == 0 else None,
        )
        path = self.preview_path(trainer.step)
        write_png(path, grid)
        return path

    def write(self, trainer: Trainer) -> Path:
        """Checkpoint, config, loss CSV and plot, and a sample grid for the trainer's current step."""
        self.write_checkpoint(trainer.state_dict(), trainer.step, trainer.config.keep_last)
        config = {
            "model_config": trainer.model_config.to_dict(),
            "schedule": trainer.schedule.config.to_dict(),
            "train_config": trainer.config.to_dict(),
            "compute": trainer.compute.to_dict(),
            "data": trainer.data_info,
            "step": trainer.step,
        }
        if trainer.classes is not None:
            config["classes"] = trainer.classes.to_dict()
        write_atomic(self.folder / "config.json", lambda f: f.write(json.dumps(config, indent=2).encode()))
        write_atomic(self.folder / "loss.csv", lambda f: f.write(_csv_bytes(trainer.history)))
        history = trainer.history
        write_png(self.folder / "loss.png", loss_curve_image([r.step for r in history], [r.loss for r in history]))
        return self.write_preview(trainer)

    def write_checkpoint(self, state: dict, step: int, keep_last: int) -> None:
        """checkpoint.pt for ``step``; the one it replaces stays as checkpoint-STEP.pt until this one has
        been read back whole, and of those only the newest ``keep_last - 1`` stay after it."""
        path = self.checkpoint_path
        previous = self.written_step
        if keep_last > 1 and previous is not None and previous != step and path.exists():
            kept = self.folder / kept_name(previous)
            kept.unlink(missing_ok=True)
            try:
                os.link(path, kept)  # the same bytes under a second name, no copy
            except OSError:
                shutil.copy2(path, kept)
        save_checkpoint(path, state)
        load_checkpoint(path)  # read back: its digest must hold before an earlier one is let go
        self.written_step = step
        for old in kept_checkpoints(self.folder)[max(keep_last - 1, 0) :]:
            old.unlink(missing_ok=True)


def _csv_bytes(history: list[LogRecord]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in history:
        row = record.to_dict()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return text.getvalue().encode()
