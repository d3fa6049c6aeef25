"""Training runs, writes its files atomically, and resumes exactly."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from ddpm_training.train.checkpoint import load_checkpoint

from cli_helpers import error_lines, run_ddpm

TINY = ["--preset", "tiny", "--batch-size", "8", "--log-every", "2", "--num-preview", "4", "--preview-steps", "3"]


def train(capsys, data, out, *extra):
    return run_ddpm(capsys, "train", data, "--out", out, *TINY, *extra)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_folder_contents_and_checkpoint_format(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    result = train(capsys, idx_dir, out, "--max-steps", "6", "--checkpoint-every", "3")
    assert result.code == 0, result.err
    assert "stopped at step 6" in result.out
    for name in (
        "checkpoint.pt",
        "config.json",
        "loss.csv",
        "loss.png",
        "samples/step-0000003.png",
        "samples/step-0000006.png",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)  # plain data, no pickled modules
    for key in ("model", "ema", "optimizer", "step", "rng", "model_config", "schedule", "data"):
        assert key in ckpt
    assert ckpt["step"] == 6 and ckpt["format_version"] == 1
    assert ckpt["schedule"] == {
        "kind": "linear",
        "num_timesteps": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "cosine_s": 0.008,
    }
    assert len(ckpt["data"]["fingerprint"]) == 64
    lines = (out / "loss.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,loss,lr,images_per_sec,elapsed_s"
    # A reading every 2 steps, plus one at the step-3 checkpoint so each checkpoint's CSV is complete.
    assert [int(line.split(",")[0]) for line in lines[1:]] == [2, 3, 4, 6]
    assert json.loads((out / "config.json").read_text())["model_config"]["image_size"] == 12
    # The EMA weights differ from the raw weights after training (decay warm-up makes them move).
    assert not torch.equal(ckpt["ema"]["cv1.weight"], ckpt["model"]["cv1.weight"])


@pytest.mark.parametrize(
    "extra",
    [
        ["--precision", "fp32", "--memory-format", "contiguous"],
        ["--class-conditional", "--label-dropout", "0.3"],
        ["--precision", "bf16", "--memory-format", "channels_last"],
        ["--prediction", "edm", "--noise-levels", "log-normal", "--loss-weighting", "min-snr", "--adam-beta2", "0.99"],
        ["--prediction", "v", "--schedule", "cosine"],
    ],
    ids=["plain", "classes", "bf16-channels-last", "edm-log-normal", "v-cosine"],
)
def test_resume_continues_exactly(capsys, idx_dir, tmp_path, extra):
    """N steps, stop, resume, M more == N + M uninterrupted steps, bit for bit on CPU (for a conditional
    run the label dropout draws come from the checkpointed generator too). The two runs name their
    precision and layout (auto could time its way to different ones); the resume names none and keeps
    the run's."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    precision = [] if "--precision" in extra else ["--precision", "fp32", "--memory-format", "contiguous"]
    # Every case names both, or auto may time its way to a different layout in each run (a CI run did).
    assert "--memory-format" in [*precision, *extra]
    common = ["--warmup-steps", "3", "--seed", "7", "--checkpoint-every", "100", *precision, *extra]
    assert train(capsys, idx_dir, straight, "--max-steps", "10", *common).code == 0
    assert train(capsys, idx_dir, split, "--max-steps", "4", *common).code == 0
    # Steps 4..9 cross an epoch boundary (64 images / batch 8 = 8 steps per epoch).
    result = run_ddpm(capsys, "train", idx_dir, "--resume", split / "checkpoint.pt", "--max-steps", "10")
    assert result.code == 0, result.err
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 10
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name}"
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][key][name])
    assert torch.equal(a["rng"]["train"], b["rng"]["train"])
    # The loss history is whole too: 5 readings from every 2 steps, in both runs.
    assert [r["step"] for r in a["history"]] == [r["step"] for r in b["history"]] == [2, 4, 6, 8, 10]


def test_bf16_and_cosine_schedule_train(capsys, idx_dir, tmp_path):
    result = train(
        capsys, idx_dir, tmp_path / "bf16", "--max-steps", "3", "--bf16", "--schedule", "cosine", "--timesteps", "200"
    )
    assert result.code == 0, result.err
    ckpt = load_checkpoint(tmp_path / "bf16" / "checkpoint.pt")
    assert ckpt["train_config"]["bf16"] is True and ckpt["schedule"]["kind"] == "cosine"
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in ckpt["history"])


def test_training_lowers_the_loss(capsys, idx_dir, tmp_path):
    """A weak but real check that the objective is wired up: 60 steps at lr 3e-3 on 64 discs."""
    result = train(
        capsys,
        idx_dir,
        tmp_path / "fit",
        "--max-steps",
        "60",
        "--lr",
        "3e-3",
        "--log-every",
        "10",
        "--checkpoint-every",
        "100",
    )
    assert result.code == 0
    history = load_checkpoint(tmp_path / "fit" / "checkpoint.pt")["history"]
    assert history[-1]["loss"] < 0.6 * history[0]["loss"], [r["loss"] for r in history]


# ---- bad input: one line naming the problem, exit 2, no traceback, nothing half-written


def one_line_error(result, fragment):
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err
    errors = error_lines(result)
    assert len(errors) == 1 and fragment in errors[0], result.err


def test_resume_with_another_config_is_refused_and_checkpoint_untouched(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train(capsys, idx_dir, out, "--max-steps", "2").code == 0
    before = sha(out / "checkpoint.pt")
    result = run_ddpm(
        capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--preset", "seed-small", "--max-steps", "4"
    )
    one_line_error(result, "another model config")
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--lr", "0.5", "--max-steps", "4")
    one_line_error(result, "training setting lr")
    result = run_ddpm(
        capsys,
        "train",
        idx_dir,
        "--resume",
        out / "checkpoint.pt",
        "--limit",
        "32",
        "--batch-size",
        "8",
        "--max-steps",
        "4",
    )
    one_line_error(result, "other data")
    assert sha(out / "checkpoint.pt") == before


def test_existing_run_is_not_overwritten(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train(capsys, idx_dir, out, "--max-steps", "1").code == 0
    before = sha(out / "checkpoint.pt")
    one_line_error(train(capsys, idx_dir, out, "--max-steps", "1"), "a run already lives here")
    assert sha(out / "checkpoint.pt") == before


def test_unwritable_output_folder(capsys, idx_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    one_line_error(train(capsys, idx_dir, blocker / "run", "--max-steps", "1"), "cannot be written")
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("content,fragment", [(b"garbage", "not a readable checkpoint"), (None, "no such checkpoint")])
def test_bad_checkpoint_on_resume(capsys, idx_dir, tmp_path, content, fragment):
    path = tmp_path / "ckpt.pt"
    if content is not None:
        path.write_bytes(content)
    one_line_error(run_ddpm(capsys, "train", idx_dir, "--resume", path, "--max-steps", "1"), fragment)


def test_checkpoint_of_unknown_format_version(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train(capsys, idx_dir, out, "--max-steps", "1").code == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt["format_version"] = 99
    torch.save(ckpt, tmp_path / "future.pt")
    one_line_error(run_ddpm(capsys, "train", idx_dir, "--resume", tmp_path / "future.pt"), "format version 99")


def test_pickled_module_checkpoint_is_refused(capsys, idx_dir, tmp_path):
    """The seed's torch.save(model) file must not be unpickled."""
    from ddpm_training.model.config import PRESETS
    from ddpm_training.model.unet import Unet

    torch.save(Unet(PRESETS["tiny"].with_image(1, 12)), tmp_path / "pickled.pt")
    result = run_ddpm(capsys, "train", idx_dir, "--resume", tmp_path / "pickled.pt")
    one_line_error(result, "holds pickled Python objects")
    assert "Weights only load failed" not in result.err and "warning" not in result.err.lower()  # torch's text


@pytest.mark.parametrize("case", ["missing", "magic", "truncated", "ragged", "text", "nan", "mixed", "empty"])
def test_bad_data_via_cli(capsys, tmp_path, images, case):
    from test_data import bad_inputs

    path, fragment = bad_inputs(tmp_path, images)[case]
    out = tmp_path / "run"
    one_line_error(run_ddpm(capsys, "train", path, "--out", out, *TINY, "--max-steps", "1"), fragment)
    assert not (out / "checkpoint.pt").exists()


def test_batch_larger_than_data_and_bad_options(capsys, idx_dir, tmp_path):
    one_line_error(train(capsys, idx_dir, tmp_path / "r", "--limit", "4", "--max-steps", "1"), "fewer than one batch")
    one_line_error(train(capsys, idx_dir, tmp_path / "r", "--lr", "-1", "--max-steps", "1"), "--lr must be positive")
    result = run_ddpm(capsys, "train", idx_dir, "--preset", "huge")
    assert result.code == 2 and "Traceback" not in result.err


def test_help_documents_every_option(capsys):
    result = run_ddpm(capsys, "train", "--help")
    assert result.code == 0
    for flag in (
        "--preset",
        "--out",
        "--resume",
        "--epochs",
        "--max-steps",
        "--max-minutes",
        "--batch-size",
        "--lr",
        "--warmup-steps",
        "--ema-decay",
        "--grad-clip",
        "--bf16",
        "--seed",
        "--limit",
        "--device",
        "--schedule",
        "--timesteps",
        "--checkpoint-every",
    ):
        assert flag in result.out, flag
    # every training setting meant for the command line is an option, with TrainConfig's help and default
    from dataclasses import fields

    from ddpm_training.train.config import TrainConfig

    text = " ".join(result.out.split())
    for item in fields(TrainConfig):
        if item.metadata.get("cli"):
            assert "--" + item.name.replace("_", "-") in text, item.name
            assert " ".join(item.metadata["help"].split()[:4]) in text, item.name
            if item.default is not None:
                assert f"[default: {item.default}]" in text, item.name


def test_rgb_32x32_data_trains(capsys, tmp_path):
    """Channels and size come from the data: 3x16x16 RGB here (32x32x3 is covered in test_model)."""
    import numpy as np

    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    result = train(capsys, tmp_path / "rgb.npy", tmp_path / "run", "--max-steps", "2")
    assert result.code == 0, result.err
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["model_config"]["im_channels"] == 3 and ckpt["model_config"]["image_size"] == 16


def test_resume_keeps_the_runs_limit(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train(capsys, idx_dir, out, "--limit", "40", "--max-steps", "2").code == 0
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "4")
    assert result.code == 0, result.err
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["data"]["num_images"] == 40 and ckpt["data"]["limit"] == 40


# ---- never lose a user's file, never a traceback, never silent nonsense


@pytest.mark.parametrize(
    "option,value,fragment",
    [
        ("--seed", "-1", "--seed must be 0 or more"),
        ("--lr", "nan", "--lr must be a finite number"),
        ("--lr", "inf", "--lr must be a finite number"),
        ("--grad-clip", "nan", "--grad-clip must be a finite number"),
        ("--preset", "huge", "'huge' is not one of 'seed', 'seed-small', 'fast', 'tiny'"),
    ],
)
def test_bad_options_are_one_line_and_create_nothing(capsys, idx_dir, tmp_path, option, value, fragment):
    out = tmp_path / "run"
    result = run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "1", option, value)
    one_line_error(result, fragment)
    assert "Usage:" not in result.err
    assert not out.exists()


def test_refused_runs_leave_no_folder_behind(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    one_line_error(train(capsys, idx_dir, out, "--limit", "4", "--max-steps", "1"), "fewer than one batch")
    assert not out.exists()
    header_only = tmp_path / "empty.csv"
    header_only.write_text("label,pixel0,pixel1,pixel2,pixel3\n")
    result = run_ddpm(capsys, "train", header_only, "--out", out, *TINY, "--max-steps", "1")
    one_line_error(result, "header but no rows")
    assert "Warning" not in result.err and not out.exists()  # numpy's warning is not printed


def test_corrupted_npz_is_one_line_for_train_and_eval(capsys, tmp_path, images):
    import numpy as np

    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.repeat(images, 4, axis=0), y_train=np.arange(256) % 10)
    damaged = bytearray(path.read_bytes())
    damaged[2000:2100] = bytes(b ^ 0xFF for b in damaged[2000:2100])  # inside x_train's data
    path.write_bytes(bytes(damaged))
    one_line_error(run_ddpm(capsys, "train", path, "--out", tmp_path / "run", *TINY), "cannot read array 'x_train'")
    one_line_error(run_ddpm(capsys, "eval", path, "--real", path), "cannot read array 'x_train'")
    assert not (tmp_path / "run").exists()


def test_non_finite_loss_stops_training_and_keeps_the_last_finite_checkpoint(capsys, idx_dir, tmp_path):
    """lr 1e30 without clipping: step 1 is finite (weights ~1e30), step 2 overflows to NaN."""
    out = tmp_path / "run"
    result = train(
        capsys, idx_dir, out, "--lr", "1e30", "--grad-clip", "0", "--max-steps", "20", "--checkpoint-every", "1"
    )
    one_line_error(result, "training stopped, the checkpoint of step 1 is kept")
    assert "the loss is nan" in result.err
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 1
    for part in ("model", "ema"):
        assert all(torch.isfinite(v).all() for v in ckpt[part].values())


def test_resume_cleans_its_stale_temporaries_and_writes_a_missing_grid(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    assert train(capsys, idx_dir, out, "--max-steps", "3").code == 0
    # What kill -9 leaves: a half-written checkpoint, and no grid when it struck between the two writes.
    (out / ".checkpoint.pt.k3j4h2.tmp").write_bytes(b"half" * 1000)
    (out / "samples" / ".step-0000003.png.x81.tmp").write_bytes(b"half")
    (out / ".mine.tmp").write_text("not ours")
    (out / "samples" / "step-0000003.png").unlink()
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "3")
    assert result.code == 0, result.err
    assert (out / "samples" / "step-0000003.png").is_file()
    assert not (out / ".checkpoint.pt.k3j4h2.tmp").exists() and not list((out / "samples").glob(".*"))
    assert (out / ".mine.tmp").read_text() == "not ours"


def test_resume_into_another_runs_folder_is_refused(capsys, idx_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train(capsys, idx_dir, a, "--max-steps", "1").code == 0
    assert train(capsys, idx_dir, b, "--max-steps", "1").code == 0
    before = sha(b / "checkpoint.pt")
    result = run_ddpm(capsys, "train", idx_dir, "--resume", a / "checkpoint.pt", "--out", b, "--max-steps", "2")
    one_line_error(result, "a run already lives here")
    assert sha(b / "checkpoint.pt") == before


def test_a_folder_given_as_checkpoint_is_named_as_such(capsys, idx_dir, tmp_path):
    one_line_error(run_ddpm(capsys, "train", idx_dir, "--resume", tmp_path), "is a folder")


def test_fast_preset_resumes_exactly_on_16x16_data(capsys, tmp_path):
    """16x16 images: the fast preset then skips attention at 16x16 and keeps it at 8x8 and 4x4."""
    import numpy as np

    data = tmp_path / "discs.npy"
    from data_helpers import make_images

    np.save(data, make_images(48, 16))
    # (A cosine learning rate plans for each invocation's stop rule, so a run split at step 5 would
    # follow another schedule than one planned for 8 steps: exactness is a property of constant lr.)
    common = ["--preset", "fast", "--batch-size", "8", "--loss-weighting", "min-snr"]
    common += ["--precision", "fp32", "--memory-format", "contiguous"]
    common += ["--num-preview", "2", "--preview-steps", "2", "--checkpoint-every", "100", "--seed", "3"]
    assert run_ddpm(capsys, "train", data, "--out", tmp_path / "a", *common, "--max-steps", "8").code == 0
    assert run_ddpm(capsys, "train", data, "--out", tmp_path / "b", *common, "--max-steps", "5").code == 0
    result = run_ddpm(capsys, "train", data, "--resume", tmp_path / "b" / "checkpoint.pt", "--max-steps", "8")
    assert result.code == 0, result.err
    a, b = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["model_config"]["attention_max_size"] == 14
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name}"
