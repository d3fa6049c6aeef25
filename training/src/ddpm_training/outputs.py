"""The files of a training run folder, all written atomically, by the main process only.

OUT/checkpoint.pt          latest checkpoint (see checkpoint.py)
OUT/config.json            model, schedule and training settings, for people and scripts
OUT/loss.csv               one row per log interval
OUT/loss.png               the loss curve
OUT/samples/step-NNNNNNN.png  EMA samples (DDIM, eta 0, same x_T every time)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ddpm_runtime.files import ensure_writable_dir, write_atomic, write_png

from .checkpoint import save_checkpoint
from .errors import TrainingError
from .plots import loss_curve_image
from .preview import preview_grid
from .trainer import LogRecord, Trainer

CHECKPOINT_NAME = "checkpoint.pt"
CSV_FIELDS = ("step", "epoch", "loss", "lr", "images_per_sec", "elapsed_s")


class RunFolder:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    def prepare(self, resuming: bool) -> None:
        """Fail before any training if the folder cannot be written or would lose an earlier run."""
        ensure_writable_dir(self.folder)
        ensure_writable_dir(self.folder / "samples")
        if not resuming and self.checkpoint_path.exists():
            raise TrainingError(
                f"{self.checkpoint_path}: a run already lives here; pass --resume {self.checkpoint_path} "
                "to continue it, or choose another --out"
            )

    def write(self, trainer: Trainer) -> Path:
        """Checkpoint, config, loss CSV and plot, and a sample grid for the trainer's current step."""
        save_checkpoint(self.checkpoint_path, trainer.state_dict())
        config = {
            "model_config": trainer.model_config.to_dict(),
            "schedule": trainer.schedule.config.to_dict(),
            "train_config": trainer.config.to_dict(),
            "data": trainer.data_info,
            "step": trainer.step,
        }
        write_atomic(self.folder / "config.json", lambda f: f.write(json.dumps(config, indent=2).encode()))
        write_atomic(self.folder / "loss.csv", lambda f: f.write(_csv_bytes(trainer.history)))
        history = trainer.history
        write_png(self.folder / "loss.png", loss_curve_image([r.step for r in history], [r.loss for r in history]))
        grid = preview_grid(
            trainer.ema.model,
            trainer.model_config,
            trainer.schedule,
            trainer.config.num_preview,
            trainer.config.preview_steps,
            seed=trainer.config.seed,
            device=trainer.device,
        )
        samples_path = self.folder / "samples" / f"step-{trainer.step:07d}.png"
        write_png(samples_path, grid)
        return samples_path


def _csv_bytes(history: list[LogRecord]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in history:
        row = record.to_dict()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return text.getvalue().encode()
