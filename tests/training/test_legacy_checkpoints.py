"""Checkpoints written before training/ was split into concept folders (commit 88b87b5) are what
today's code writes, key for key: the fixture holds the structure of a teacher and of a student
(--reuse 2, so with a trajectory pool) written by that commit with the same settings.

Made with: PYTHONPATH=<88b87b5's three src folders> python tests/training/test_legacy_checkpoints.py
TEACHER.pt STUDENT.pt > tests/training/legacy_checkpoints_88b87b5.json, the teacher from
``data_helpers.make_checkpoint(path, "tiny", 12, steps=2, prediction="v")`` and the student from
``ddpm distill TEACHER --max-steps 2 --batch-size 8 --calls 2 --teacher-calls 4 --reuse 2``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

FIXTURE = Path(__file__).with_name("legacy_checkpoints_88b87b5.json")
# what depends on the machine, the time or the path, not on the format: its type is compared, not its value
LOOSE = {"compute", "elapsed_s", "versions", "source", "history"}


def structure(value, key: str = ""):
    """A checkpoint as JSON: tensors as dtype and shape, values as themselves (or their type, for LOOSE)."""
    if isinstance(value, torch.Tensor):
        return f"tensor {str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    if key in LOOSE:
        return type(value).__name__
    if isinstance(value, dict):
        return {str(k): structure(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [structure(v) for v in value]
    return value


def load(path) -> dict:
    return torch.load(path, weights_only=True)


def without_additions(checkpoint: dict) -> dict:
    """``checkpoint``'s structure less what was added since the fixture, each of which must be there:
    the content digest and the --keep-last setting (in the teacher's settings a student records, too)."""
    checkpoint = dict(checkpoint)
    assert len(checkpoint.pop("sha256")) == 64
    settings = [checkpoint["train_config"]]
    if "distill" in checkpoint:
        checkpoint["distill"] = {**checkpoint["distill"], "teacher": dict(checkpoint["distill"]["teacher"])}
        settings.append(checkpoint["distill"]["teacher"]["train_config"])
    for place in settings:
        assert place.get("keep_last") == 2
    checkpoint["train_config"] = {k: v for k, v in checkpoint["train_config"].items() if k != "keep_last"}
    if "distill" in checkpoint:
        teacher = checkpoint["distill"]["teacher"]
        teacher["train_config"] = {k: v for k, v in teacher["train_config"].items() if k != "keep_last"}
    return checkpoint


def test_todays_teacher_and_student_checkpoints_have_the_legacy_structure(capsys, tmp_path):
    from cli_helpers import run_ddpm
    from data_helpers import make_checkpoint

    legacy = json.loads(FIXTURE.read_text())
    teacher = tmp_path / "teacher.pt"
    make_checkpoint(teacher, "tiny", 12, steps=2, prediction="v")
    args = ["--max-steps", "2", "--batch-size", "8", "--calls", "2", "--teacher-calls", "4", "--reuse", "2"]
    out = tmp_path / "student"
    layout = ["--precision", "fp32", "--memory-format", "channels_last"]  # as auto chose for the fixture
    result = run_ddpm(capsys, "distill", teacher, "--out", out, *args, *layout)
    assert result.code == 0, result.err
    assert without_additions(structure(load(teacher))) == legacy["teacher"]
    student = without_additions(structure(load(out / "checkpoint.pt")))
    # a student sees no data: its epoch was step / 2**62 (a stand-in for "no epochs"), now it is 0
    assert legacy["student"]["epoch"] < 1e-15 and student["epoch"] == 0.0
    assert student == {**legacy["student"], "epoch": 0.0}
    assert list(student) == list(legacy["student"])  # the same order of keys, too


def test_the_structure_sees_a_changed_field():
    checkpoint = {"model": {"w": torch.zeros(2, 3)}, "step": 4, "compute": {"bf16": True}}
    assert structure(checkpoint) == {"model": {"w": "tensor float32 [2, 3]"}, "step": 4, "compute": "dict"}
    assert structure({**checkpoint, "step": 5}) != structure(checkpoint)


if __name__ == "__main__":
    teacher_path, student_path = sys.argv[1:3]
    print(json.dumps({"teacher": structure(load(teacher_path)), "student": structure(load(student_path))}, indent=1))
