"""ddpm train --class-conditional: labels, class names, label dropout, checkpoints, resume, refusals;
and ddpm eval's agreement with requested labels. Unconditional training must stay as it was."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from ddpm_runtime.schedule import ScheduleConfig
from ddpm_training.data import ImageData, load_images
from ddpm_training.data.classes import FASHION_MNIST_NAMES, ClassConditioning, resolve_class_names
from ddpm_training.errors import TrainingError
from ddpm_training.evaluation import evaluate, feature_classifier
from ddpm_training.model.config import preset
from ddpm_training.model.unet import Unet, count_parameters
from ddpm_training.train.checkpoint import load_checkpoint
from ddpm_training.train.config import TrainConfig
from ddpm_training.train.data_objective import data_trainer

from cli_helpers import error_lines, run_ddpm
from data_helpers import idx_bytes, make_images

TINY = ["--preset", "tiny", "--batch-size", "8", "--log-every", "2", "--num-preview", "4", "--preview-steps", "2"]


def train(capsys, data, out, *extra):
    return run_ddpm(capsys, "train", data, "--out", out, *TINY, *extra)


def idx_folder(folder, images, labels):
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return folder


def labelled(n=32, classes=10):
    return ImageData(make_images(n, 12)[..., None], np.arange(n) % classes, "generated")


# ---- class names


def test_class_names_from_the_data_path_folders_option_or_numbers(tmp_path, images, labels):
    fashion = idx_folder(tmp_path / "Fashion-MNIST" / "raw", images, labels)
    assert resolve_class_names(load_images(fashion)) == FASHION_MNIST_NAMES
    plain = idx_folder(tmp_path / "mnist", images, labels)
    assert resolve_class_names(load_images(plain)) == tuple(str(i) for i in range(10))
    assert resolve_class_names(load_images(plain), tuple("abcdefghij")) == tuple("abcdefghij")

    from PIL import Image

    for i, name in enumerate(["cat", "ankle boot", "dog"]):
        (tmp_path / "folder" / name).mkdir(parents=True)
        Image.fromarray(images[i]).save(tmp_path / "folder" / name / "a.png")
    folder = load_images(tmp_path / "folder")
    assert resolve_class_names(folder) == ("ankle boot", "cat", "dog")  # sorted, as the labels
    assert folder.labels.tolist() == [0, 1, 2]  # files in path order: ankle boot/, cat/, dog/
    np.testing.assert_array_equal(folder.images[0, :, :, 0], images[1])  # the image saved under "ankle boot"


@pytest.mark.parametrize(
    "given, message",
    [(tuple("abc"), "labels go up to 9, but --class-names names only 3"), (("a",) * 10, "same name")],
)
def test_bad_class_names_are_refused(given, message):
    with pytest.raises(TrainingError, match=message):
        resolve_class_names(labelled(), given)


def test_cli_class_names_list_and_file(capsys, tmp_path, idx_dir):
    names = ",".join(f"c{i}" for i in range(10))
    out = tmp_path / "a"
    assert train(capsys, idx_dir, out, "--class-conditional", "--class-names", names, "--max-steps", "2").code == 0
    assert json.loads((out / "config.json").read_text())["classes"]["names"] == names.split(",")
    listing = tmp_path / "names.txt"
    listing.write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    out = tmp_path / "b"
    assert train(capsys, idx_dir, out, "--class-conditional", "--class-names", listing, "--max-steps", "2").code == 0
    assert load_checkpoint(out / "checkpoint.pt")["classes"] == {
        "names": [f"k{i}" for i in range(10)],
        "label_dropout": 0.1,
    }


# ---- refusals


def test_data_without_labels_is_refused_in_one_line(capsys, tmp_path):
    data = tmp_path / "images.npy"
    np.save(data, make_images(32, 12))
    out = tmp_path / "run"
    result = train(capsys, data, out, "--class-conditional", "--max-steps", "2")
    assert result.code == 2
    assert error_lines(result) == [
        f"error: {data}: --class-conditional needs labels, and this data has none (IDX with a labels file, a CSV "
        "with a label column, an .npz with y_train/labels, or an image folder with class subfolders)"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--label-dropout", "0.2"], "--label-dropout applies to --class-conditional training only"),
        (["--class-names", "a,b"], "--class-names applies to --class-conditional training only"),
        (["--class-conditional", "--label-dropout", "1"], "--label-dropout must be in [0, 1), got 1.0"),
        (["--class-conditional", "--class-names", "a,,b"], "class names must be non-empty"),
    ],
)
def test_class_options_refused_where_they_mean_nothing(capsys, tmp_path, idx_dir, args, message):
    out = tmp_path / "run"
    result = train(capsys, idx_dir, out, *args, "--max-steps", "2")
    assert result.code == 2 and len(error_lines(result)) == 1 and message in error_lines(result)[0], result.err
    assert not out.exists()


def test_resume_keeps_the_classes_and_refuses_to_change_them(capsys, tmp_path, idx_dir):
    out = tmp_path / "run"
    assert train(capsys, idx_dir, out, "--class-conditional", "--max-steps", "2").code == 0
    ckpt = out / "checkpoint.pt"
    resumed = run_ddpm(capsys, "train", idx_dir, "--resume", ckpt, "--max-steps", "4")
    assert resumed.code == 0, resumed.err
    assert load_checkpoint(ckpt)["step"] == 4 and load_checkpoint(ckpt)["classes"]["label_dropout"] == 0.1
    changed = run_ddpm(capsys, "train", idx_dir, "--resume", ckpt, "--label-dropout", "0.3", "--max-steps", "6")
    assert changed.code == 2 and "trained with --label-dropout 0.1" in error_lines(changed)[0]

    plain = tmp_path / "plain"
    assert train(capsys, idx_dir, plain, "--max-steps", "2").code == 0
    result = run_ddpm(
        capsys, "train", idx_dir, "--resume", plain / "checkpoint.pt", "--class-conditional", "--max-steps", "4"
    )
    assert result.code == 2 and "it is an unconditional run" in error_lines(result)[0]


# ---- the model and the training batches


def test_unconditional_model_and_config_are_unchanged():
    config = preset("seed-small")
    assert "num_classes" not in config.to_dict()  # checkpoints and metadata are what versions without classes wrote
    assert count_parameters(Unet(config)) == 1_596_673
    assert count_parameters(Unet(preset("seed"))) == 10_846_433
    conditional = config.with_classes(10)
    assert count_parameters(Unet(conditional)) == 1_596_673 + 11 * 128  # 10 classes + "no class", t_emb_dim wide
    torch.manual_seed(0)
    plain = Unet(config).state_dict()
    torch.manual_seed(0)
    with_classes = Unet(conditional).state_dict()
    assert set(with_classes) - set(plain) == {"class_emb.weight"}
    assert all(torch.equal(plain[k], with_classes[k]) for k in plain)  # same initial weights otherwise


def test_an_unconditional_unet_refuses_labels():
    model = Unet(preset("tiny").with_image(1, 12))
    with pytest.raises(ValueError, match="takes no class labels"):
        model(torch.zeros(1, 1, 12, 12), torch.zeros(1), torch.zeros(1, dtype=torch.long))


def test_labels_are_dropped_at_the_given_rate_and_the_rest_of_the_batch_is_unchanged():
    data = labelled(256)
    config = preset("tiny").with_image(1, 12)
    train = TrainConfig(batch_size=256, seed=3)
    plain = data_trainer(config, ScheduleConfig(), train, data)
    conditional = data_trainer(
        config.with_classes(10), ScheduleConfig(), train, data, classes=ClassConditioning(tuple("abcdefghij"), 0.25)
    )
    x0, noise, t, y = conditional.objective.batch(0, conditional.generator)
    x0_u, noise_u, t_u, y_u = plain.objective.batch(0, plain.generator)
    assert y_u is None
    # the dropout is drawn after t and noise: the first batch's images, noise and timesteps are the
    # unconditional run's (later ones differ, the generator having moved on by the dropout draws)
    assert torch.equal(x0, x0_u) and torch.equal(noise, noise_u) and torch.equal(t, t_u)
    dropped = 0
    for step in range(8):
        _, _, _, y = conditional.objective.batch(step, conditional.generator)
        indices = conditional.objective.permutation(step)  # one batch per epoch: step k is epoch k
        kept = y != 10
        assert torch.equal(y[kept], torch.as_tensor(data.labels)[indices][kept])
        dropped += int((~kept).sum())
    assert 0.21 < dropped / (8 * 256) < 0.29  # 0.25 +- 4.6 standard deviations


def test_trainer_refuses_labels_outside_the_model_classes():
    data = labelled(32, classes=10)
    config = preset("tiny").with_image(1, 12).with_classes(3)
    with pytest.raises(TrainingError, match=r"labels must lie in 0..2"):
        data_trainer(
            config, ScheduleConfig(), TrainConfig(batch_size=8), data, classes=ClassConditioning(("a", "b", "c"))
        )


# ---- ddpm eval with requested labels


def test_eval_reports_agreement_with_requested_labels_and_fid_per_class(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_ONNX_CACHE", str(tmp_path / "cache"))
    images = make_images(600, 12, seed=1)
    brightness = images.reshape(600, -1).mean(1)
    labels = (brightness > np.median(brightness)).astype(np.int64)  # two classes a LeNet can tell apart
    real = tmp_path / "real.npz"
    np.savez(real, x_train=images, y_train=labels)
    real_data = load_images(real)
    classifier = feature_classifier(real_data, tmp_path / "cache")
    samples = ImageData(images[:100, :, :, None], labels[:100], "right")
    report = evaluate(samples, real_data, classifier, num_reference=200)  # leaves 300 real images for the floors
    assert report.class_agreement == pytest.approx(
        np.mean(classifier_predictions(classifier, images[:100]) == labels[:100])
    )
    wrong = evaluate(
        ImageData(images[:100, :, :, None], 1 - labels[:100], "wrong"), real_data, classifier, num_reference=200
    )
    assert wrong.class_agreement == pytest.approx(1 - report.class_agreement)
    assert [row.label for row in report.per_class] == [0, 1]
    assert sum(row.num_samples for row in report.per_class) == 100
    assert all(row.fid_floor is not None for row in report.per_class)

    npz = tmp_path / "samples.npz"
    names = np.array(["dim", "bright"])
    np.savez(npz, arr_0=images[:100, :, :, None], labels=labels[:100], class_names=names)  # as ddpm-run --class
    result = run_ddpm(capsys, "eval", npz, "--real", real)
    assert result.code == 0, result.err
    headline = feature_classifier(real_data, tmp_path / "cache", network="cnn")  # cached by the command
    agreement = np.mean(classifier_predictions(headline, images[:100]) == labels[:100])
    assert f"agrees with the requested class for {agreement:.1%}" in result.out
    assert "  dim  " in result.out and "  bright  " in result.out
    np.savez(npz, arr_0=images[:100, :, :, None], labels=np.full(100, 5))
    result = run_ddpm(capsys, "eval", npz, "--real", real)
    assert result.code == 2 and "requested labels run 5..5" in error_lines(result)[0]


def classifier_predictions(classifier, images):
    from ddpm_training.evaluation.classifier import features_and_predictions

    return features_and_predictions(classifier.model, images[..., None])[1]
