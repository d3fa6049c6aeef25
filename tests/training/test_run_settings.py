"""resolve_settings: preset + command-line options + resumed checkpoint -> one run's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddpm_runtime.schedule import ScheduleConfig
from ddpm_training.errors import TrainingError
from ddpm_training.model.config import DEFAULT_PRESET, PRESETS
from ddpm_training.train.config import TrainConfig
from ddpm_training.train.settings import DEFAULT_RUN_FOLDER, TrainRequest, data_limit, resolve_settings


def saved_checkpoint(**train) -> dict:
    """The parts of a checkpoint resolve_settings reads."""
    return {
        "model_config": PRESETS["tiny"].with_image(1, 12).to_dict(),
        "schedule": ScheduleConfig(num_timesteps=200).to_dict(),
        "train_config": TrainConfig(batch_size=8, lr=3e-4, max_steps=100, **train).to_dict(),
        "data": {"limit": 40},
    }


def test_new_run_uses_the_defaults_and_the_given_options():
    request = TrainRequest(data=Path("data"), train_options={"lr": 3e-4}, schedule_options={"num_timesteps": 500})
    settings = resolve_settings(request, None, channels=3, image_size=32)
    assert settings.model_config == PRESETS[DEFAULT_PRESET].with_image(3, 32)
    assert settings.schedule_config == ScheduleConfig(num_timesteps=500)
    assert settings.train_config == TrainConfig(lr=3e-4)
    assert settings.folder == DEFAULT_RUN_FOLDER


def test_resume_keeps_the_checkpoints_settings_and_folder():
    request = TrainRequest(data=Path("data"), resume=Path("runs/a/checkpoint.pt"), train_options={"log_every": 5})
    settings = resolve_settings(request, saved_checkpoint(), channels=1, image_size=12)
    assert settings.model_config == PRESETS["tiny"].with_image(1, 12)
    assert settings.schedule_config.num_timesteps == 200
    assert (settings.train_config.lr, settings.train_config.max_steps, settings.train_config.log_every) == (
        3e-4,
        100,
        5,
    )
    assert settings.folder == Path("runs/a")
    assert data_limit(request, saved_checkpoint()) == 40  # the resumed run's --limit
    assert data_limit(TrainRequest(data=Path("d"), limit=7), saved_checkpoint()) == 7


def test_a_new_stop_option_replaces_every_saved_one():
    request = TrainRequest(data=Path("d"), resume=Path("c.pt"), train_options={"max_minutes": 2.0})
    train = resolve_settings(request, saved_checkpoint(epochs=3.0), 1, 12).train_config
    assert (train.max_minutes, train.max_steps, train.epochs) == (2.0, None, None)


def test_resume_with_another_preset_or_unknown_saved_settings_is_refused():
    with pytest.raises(TrainingError, match="another model config than --preset seed-small"):
        resolve_settings(
            TrainRequest(data=Path("d"), preset="seed-small", resume=Path("c.pt")), saved_checkpoint(), 1, 12
        )
    bad = saved_checkpoint()
    bad["train_config"]["momentum"] = 0.9
    with pytest.raises(TrainingError, match=r"c\.pt: unknown training setting\(s\): momentum"):
        resolve_settings(TrainRequest(data=Path("d"), resume=Path("c.pt")), bad, 1, 12)


def test_train_config_round_trips_and_rejects_unknown_keys():
    config = TrainConfig(batch_size=64, bf16=True, max_minutes=15.0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(TrainingError, match="unknown training setting"):
        TrainConfig.from_dict({**config.to_dict(), "lr_decay": "cosine"})
