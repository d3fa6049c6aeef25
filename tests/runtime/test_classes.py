"""Class names, --class requests, the "classes" metadata and classifier-free guidance's arithmetic.
No torch: the guided model is checked here against a hand-made eps-model whose outputs are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddpm_runtime.class_request import DEFAULT_PER_CLASS, class_request
from ddpm_runtime.classes import check_class_names, class_index, requested_classes
from ddpm_runtime.errors import UserError
from ddpm_runtime.guidance import guided_eps_model
from ddpm_runtime.metadata import ClassSpec, ImageSpec, ModelMetadata
from ddpm_runtime.schedule import ScheduleConfig

NAMES = ("T-shirt/top", "Trouser", "Ankle boot")


def metadata(classes: ClassSpec | None = None, training: dict | None = None) -> ModelMetadata:
    return ModelMetadata(
        ImageSpec(1, 4, 4), ScheduleConfig(), "epsilon", {}, training or {}, {"format": "onnx"}, classes=classes
    )


def test_a_class_is_named_by_index_or_by_name_in_any_case():
    assert class_index("2", NAMES) == 2
    assert class_index("trouser", NAMES) == 1
    assert class_index("ANKLE_BOOT", NAMES) == 2  # "_" for a space, so no quotes are needed
    assert class_index("ankle  boot", NAMES) == 2
    assert requested_classes(["all"], NAMES) == (0, 1, 2)
    assert requested_classes(["1", "ankle boot", "1"], NAMES) == (1, 2, 1)


@pytest.mark.parametrize(
    "request_, message",
    [("3", "classes 0..2"), ("boot", "unknown class"), ("-1", "unknown class")],
)
def test_unknown_classes_are_refused_with_the_list(request_, message):
    with pytest.raises(UserError, match=message):
        class_index(request_, NAMES)


@pytest.mark.parametrize(
    "names, message",
    [
        (("a",), "at least two"),
        (("a", ""), "empty name"),
        (("a", "All"), "every class"),
        (("a", "b", "a"), "same name"),
        (("a", "Ankle_boot", "ankle boot"), "same name"),
        (("1", "0"), "would read as class 1"),
    ],
)
def test_ambiguous_class_names_are_refused(names, message):
    assert message in check_class_names(names)


def test_digit_names_that_are_their_own_index_are_fine():
    assert check_class_names(("0", "1", "2")) is None


def test_metadata_round_trip_with_classes_and_without():
    conditional = metadata(ClassSpec(NAMES, 3), {"label_dropout": 0.1})
    document = json.loads(conditional.to_json())
    assert document["classes"] == {"names": list(NAMES), "num_classes": 3, "null_index": 3}
    assert ModelMetadata.from_json(conditional.to_json()) == conditional
    plain = metadata()
    assert "classes" not in json.loads(plain.to_json())  # an unconditional document is as it always was
    assert ModelMetadata.from_json(plain.to_json()).classes is None


@pytest.mark.parametrize(
    "classes, message",
    [
        ({"names": ["a", "b"], "num_classes": 2, "null_index": 0}, "'no class' label must follow"),
        ({"names": ["a", "b"], "num_classes": 3, "null_index": 2}, "num_classes 3"),
        ({"names": ["a", "a"], "num_classes": 2, "null_index": 2}, "same name"),
        ({"names": ["a", 7], "num_classes": 2, "null_index": 2}, "must be strings"),
        ({"num_classes": 2, "null_index": 2}, "missing or malformed"),
    ],
)
def test_bad_class_metadata_is_one_error_naming_the_file(classes, message):
    document = json.loads(metadata().to_json())
    document["classes"] = classes
    with pytest.raises(UserError, match=message) as caught:
        ModelMetadata.from_json(json.dumps(document), "m.onnx")
    assert str(caught.value).startswith("m.onnx: bad metadata")


# ---- what ddpm-run sample is asked for


def test_class_request_repeats_each_class_per_class_times():
    conditional = metadata(ClassSpec(NAMES, 3))
    request = class_request("m.onnx", conditional, None, ("ankle boot", "0"), 2, 3.0)
    assert request.labels == (2, 2, 0, 0) and request.num_images == 4 and request.per_class == 2
    assert request.guidance_scale == 3.0
    assert class_request("m.onnx", conditional, None, ("all",), None, None).labels == tuple(
        np.repeat([0, 1, 2], DEFAULT_PER_CLASS)
    )
    plain = class_request("m.onnx", conditional, None, (), None, None)
    assert plain.labels is None and plain.num_images == 16  # no --class: "no class" samples


@pytest.mark.parametrize(
    "model, num_images, classes, per_class, scale, message",
    [
        (None, None, ("1",), None, None, "m.onnx: is an unconditional model"),
        ("c", 4, ("1",), None, None, "-n/--num-images and --class"),
        ("c", None, (), 3, None, "--per-class needs --class"),
        ("c", None, (), None, 2.0, "--guidance-scale needs --class"),
        ("c", None, ("1",), 0, None, "--per-class must be at least 1"),
        ("c", None, ("1",), None, -1.0, "--guidance-scale must be"),
        ("c", None, ("1",), None, float("nan"), "--guidance-scale must be"),
        ("c", None, ("sneaker",), None, None, "unknown class"),
    ],
)
def test_class_request_refusals(model, num_images, classes, per_class, scale, message):
    meta = metadata(ClassSpec(NAMES, 3)) if model else metadata()
    with pytest.raises(UserError, match=message):
        class_request("m.onnx", meta, num_images, classes, per_class, scale)


# ---- guidance arithmetic


class RecordingModel:
    """eps(x, t, y) = x * (y + 1) + t: each label gives a different, known prediction. Records the calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, y):
        self.calls.append((x.shape[0], y.copy()))
        return (x * (y[:, None, None, None] + 1.0) + t[:, None, None, None]).astype(np.float32)


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_guided_eps_is_eq6_from_one_call_of_twice_the_batch(scale):
    model = RecordingModel()
    labels = np.array([0, 2, 1])
    x = np.random.default_rng(0).standard_normal((3, 1, 2, 2)).astype(np.float32)
    t = np.array([5.0, 10.0, 999.0], dtype=np.float32)
    got = guided_eps_model(model, labels, 3, scale)(x, t)
    conditional = model(x, t, labels)
    unconditional = model(x, t, np.full(3, 3))
    expected = (1 + scale) * conditional.astype(np.float64) - scale * unconditional.astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    batch, sent = model.calls[0]
    assert batch == 6 and sent.tolist() == [0, 2, 1, 3, 3, 3]  # one call: the rows, then the same rows unlabelled


def test_scale_zero_is_the_conditional_model_in_one_plain_call():
    model = RecordingModel()
    x = np.ones((2, 1, 2, 2), dtype=np.float32)
    t = np.zeros(2, dtype=np.float32)
    got = guided_eps_model(model, np.array([1, 0]), 3, 0.0)(x, t)
    assert [c[0] for c in model.calls] == [2]
    np.testing.assert_array_equal(got, model(x, t, np.array([1, 0])))


def test_unlabelled_rows_are_left_unguided():
    model = RecordingModel()
    x = np.random.default_rng(1).standard_normal((2, 1, 2, 2)).astype(np.float32)
    t = np.array([3.0, 4.0], dtype=np.float32)
    got = guided_eps_model(model, np.array([3, 1]), 3, 5.0)(x, t)
    np.testing.assert_allclose(got[0], model(x[:1], t[:1], np.array([3]))[0], atol=1e-6)
