"""The files of a training run folder, all written atomically, by the main process only.

OUT/checkpoint.pt          latest checkpoint (see checkpoint.py)
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
from pathlib import Path

from ddpm_runtime.files import check_writable_dir, ensure_writable_dir, write_atomic, write_png

from ..errors import TrainingError
from .checkpoint import CHECKPOINT_NAME, save_checkpoint
from .plots import loss_curve_image
from .preview import preview_grid
from .trainer import LogRecord, Trainer

RUN_FILES = (".checkpoint.pt.", ".config.json.", ".loss.csv.", ".loss.png.")  # prefixes of their temporaries
CSV_FIELDS = ("step", "epoch", "loss", "lr", "images_per_sec", "elapsed_s")


class RunFolder:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    def check(self, resume: Path | None) -> None:
        """Before anything is created: refuse a folder that would lose an earlier run or cannot be written.

        Its checkpoint may only be replaced by the run it holds: ``resume`` must be that very file."""
        existing = self.checkpoint_path
        if existing.exists() and not (resume is not None and os.path.samefile(existing, resume)):
            raise TrainingError(
                f"{self.checkpoint_path}: a run already lives here; pass --resume {self.checkpoint_path} "
                "to continue it, or choose another --out"
            )
        check_writable_dir(self.folder / "samples")

    def prepare(self) -> list[Path]:
        """Create the folders (after every input has been validated) and prove they can be written;
        returns the folders this created, deepest first (``remove_empty`` takes them back)."""
        created = [p for p in (self.folder / "samples", self.folder) if not p.exists()]
        ensure_writable_dir(self.folder)
        ensure_writable_dir(self.folder / "samples")
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
        save_checkpoint(self.checkpoint_path, trainer.state_dict())
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


def _csv_bytes(history: list[LogRecord]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in history:
        row = record.to_dict()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return text.getvalue().encode()
