"""`ddpm distill`: the batch and loss against a hand-made computation, exact resume, refusals, and the
student's export naming its sampler, which ddpm-run then uses by default. Tiny teacher, a few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_runtime.samplers import sample_consistency, sample_dpm_solver_2m
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import sampling_timesteps
from ddpm_training.diffusion.torch_eps import numpy_eps_model
from ddpm_training.distill.config import DistillConfig
from ddpm_training.distill.distiller import student_trainer
from ddpm_training.distill.targets import student_times
from ddpm_training.distill.teacher import Teacher
from ddpm_training.train.checkpoint import load_checkpoint
from ddpm_training.train.config import TrainConfig
from ddpm_training.train.trainer import Trainer

from cli_helpers import error_lines, run_ddpm, run_ddpm_run
from data_helpers import make_checkpoint

SCHEDULE = NoiseSchedule.from_config()
SMALL = ["--batch-size", "8", "--calls", "2", "--teacher-calls", "4", "--precision", "fp32", "--memory-format",
         "contiguous", "--checkpoint-every", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    make_checkpoint(path, "tiny", 12, steps=3, prediction="v")
    return path


def distiller(teacher_path, target="end", loss="mse", **train) -> Trainer:
    config = TrainConfig(**{"batch_size": 8, "lr": 1e-4, "max_steps": 4, "prediction": "v", **train})
    distill = DistillConfig(calls=2, teacher_calls=4, target=target, loss=loss)
    return student_trainer(Teacher.from_checkpoint(load_checkpoint(teacher_path), str(teacher_path)), config, distill)


def test_batch_and_loss_by_hand(teacher):
    d = distiller(teacher)
    x, t, target, y = d.objective.trajectories(4, d.generator)  # 4 noises x 2 student times
    assert y is None
    # the same noises, through the teacher's 2M karras run written out here
    x_T = torch.randn((4, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    times = sampling_timesteps(SCHEDULE, 4, "karras")
    teacher_eps = numpy_eps_model(d.eps_model())  # the student starts as the teacher: same weights
    states = [x_T]
    end = sample_dpm_solver_2m(teacher_eps, x_T, SCHEDULE, times, callback=lambda i, s, v: states.append(v.copy()))
    np.testing.assert_allclose(x.numpy().reshape(4, 2, 1, 12, 12)[:, 0], x_T, atol=1e-6)
    np.testing.assert_allclose(x.numpy().reshape(4, 2, 1, 12, 12)[:, 1], states[2], atol=1e-6)  # teacher call 2
    np.testing.assert_array_equal(t.numpy().reshape(4, 2), np.broadcast_to(np.float32(times[[0, 2]]), (4, 2)))
    np.testing.assert_allclose(target.numpy().reshape(4, 2, 1, 12, 12)[:, 1], np.clip(end, -1, 1), atol=1e-6)
    np.testing.assert_array_equal(student_times(SCHEDULE, d.objective.distill_config), times[[0, 2]])
    # loss: the student's x_0 estimate (x - sqrt(1 - ab) eps) / sqrt(ab) against the teacher's image
    eps = teacher_eps(x.numpy(), t.numpy()).astype(np.float64)
    ab = SCHEDULE.alpha_bar_at(t.numpy().astype(np.float64))[:, None, None, None]
    x0 = (x.numpy() - np.sqrt(1 - ab) * eps) / np.sqrt(ab)
    expected = float(np.mean((x0 - target.numpy()) ** 2))
    with torch.no_grad():
        assert float(d.objective.distill_loss(d.model, x, t, target)) == pytest.approx(expected, rel=1e-4)
    assert expected > 0  # the teacher's own x_0 estimate at T-1 is not yet its ODE's end


def test_pseudo_huber_loss_by_hand(teacher):
    """Per point sqrt(e^2 + c^2) - c of the RMS x_0 error e, c = 0.00054, averaged over the points; about
    the RMS itself where errors are far above c, and about e^2 / 2c (a scaled MSE) far below it."""
    d = distiller(teacher, loss="pseudo-huber")
    x, t, target, _ = d.objective.trajectories(4, d.generator)
    eps = numpy_eps_model(d.eps_model())(x.numpy(), t.numpy()).astype(np.float64)
    ab = SCHEDULE.alpha_bar_at(t.numpy().astype(np.float64))[:, None, None, None]
    x0 = (x.numpy() - np.sqrt(1 - ab) * eps) / np.sqrt(ab)
    rms = np.sqrt(np.mean((x0 - target.numpy()) ** 2, axis=(1, 2, 3)))
    expected = float(np.mean(np.sqrt(rms**2 + 0.00054**2) - 0.00054))
    with torch.no_grad():
        assert float(d.objective.distill_loss(d.model, x, t, target)) == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(np.mean(rms), rel=0.05)  # the errors here are far above c
    from ddpm_training.distill.distiller import point_loss

    small = torch.full((2, 1, 3, 3), 1e-5)  # e = 1e-5 << c: e^2 / 2c
    np.testing.assert_allclose(point_loss(small, "pseudo-huber").numpy(), 1e-10 / (2 * 0.00054), rtol=1e-3)
    np.testing.assert_allclose(point_loss(small, "mse").numpy(), 1e-10, rtol=1e-5)


@pytest.mark.parametrize(("calls", "expected"), [(1, 10), (2, 8)])
def test_teacher_calls_default_to_10_for_one_call_else_8(capsys, teacher, tmp_path, calls, expected):
    args = ["--max-steps", "1", "--batch-size", "4", "--precision", "fp32", "--memory-format", "contiguous"]
    result = run_ddpm(capsys, "distill", teacher, "--out", tmp_path / "s", "--calls", calls, *args)
    assert result.code == 0, result.err
    assert f"dpm-solver++ karras, {expected} calls;" in result.err
    assert load_checkpoint(tmp_path / "s" / "checkpoint.pt")["distill"]["teacher_calls"] == expected


def test_segment_targets_land_on_the_teachers_next_state(teacher):
    """--target segment: from each student time, the x_0 target's DDIM step (the runtime's ddim_step, eta 0,
    x_0 unclipped) lands on the teacher's state at the next student time, and the last on its image."""
    from ddpm_runtime.samplers.ddim import ddim_step

    d = distiller(teacher, target="segment")
    x, _, target, _ = d.objective.trajectories(4, d.generator)
    x_T = torch.randn((4, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    times = sampling_timesteps(SCHEDULE, 4, "karras")
    teacher_eps = numpy_eps_model(d.eps_model())
    states = [x_T]
    end = sample_dpm_solver_2m(teacher_eps, x_T, SCHEDULE, times, callback=lambda i, s, v: states.append(v.copy()))
    ab = SCHEDULE.alpha_bar_at(times[[0, 2]])
    lands_on = [states[2], np.clip(end, -1, 1)]  # teacher call 2, then the clipped image (alpha_bar 1)
    x5, target5 = (a.numpy().astype(np.float64).reshape(4, 2, 1, 12, 12) for a in (x, target))
    for k, ab_next in enumerate([SCHEDULE.alpha_bar_at(times[2]), 1.0]):
        eps = (x5[:, k] - np.sqrt(ab[k]) * target5[:, k]) / np.sqrt(1 - ab[k])  # the eps that goes with x_0
        landed, _ = ddim_step(x5[:, k], eps, ab[k], ab_next, eta=0.0, x0_mode="none")
        np.testing.assert_allclose(landed, lands_on[k], atol=2e-5)  # float32 storage of x and the target
    # an end-target student would learn the image at both times: different targets at the first time
    assert np.abs(target5[:, 0] - np.clip(end, -1, 1)).max() > 0.1
    assert d.objective.distill_config.call_counts() == [2] and d.objective.preview().default["options"] == {
        "eta": 0.0,
        "x0": "none",
    }


def test_multistep_targets_land_on_the_teachers_states_through_the_runtimes_2m_step(teacher):
    """--target multistep: the teacher's trajectory visits the student's fitted times (refined evenly in
    lambda) and lands on t = 0; an x_0 estimate with zero error at every point makes the runtime's own
    dpm_solver_2m_step, from the teacher's state and with its own previous estimate, land on the teacher's
    next state (the last on its t = 0 state); and the loss is that error's mean square."""
    from ddpm_runtime.samplers.dpm_solver import dpm_solver_2m_step
    from ddpm_runtime.timesteps import times_of_lambdas

    d = distiller(teacher, target="multistep")
    student = d.objective.call_times(2)
    assert len(student) == 2 and student[0] == 999.0 and 0 < student[1] < 999.0
    assert d.objective.distill_config.sampler == "dpm-solver++" and d.objective.preview().default["options"] == {
        "x0": "none",
        "final": "step",
    }
    # the teacher's 4 calls: each student time and the lambda midpoint to the next (the first from sigma 160)
    lam = SCHEDULE.log_snr(np.array([student[0], student[1], 0.0]))
    mids = times_of_lambdas(SCHEDULE, [(max(lam[0], -np.log(160.0)) + lam[1]) / 2, (lam[1] + lam[2]) / 2])
    teacher_times = np.array([student[0], mids[0], student[1], mids[1]])
    x, t, target, _ = d.objective.trajectories(4, d.generator)
    x_T = torch.randn((4, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    teacher_eps = numpy_eps_model(d.eps_model())
    states = [x_T]
    end = sample_dpm_solver_2m(
        teacher_eps, x_T, SCHEDULE, teacher_times, x0="none", final="step",
        callback=lambda i, s, v: states.append(v.copy()),
    )  # fmt: skip
    np.testing.assert_allclose(end, states[-1])  # the landing state: no call after the last listed time
    x5, target5 = (a.numpy().astype(np.float64).reshape(4, 2, 1, 12, 12) for a in (x, target))
    np.testing.assert_allclose(x5[:, 1], states[2], atol=1e-6)
    np.testing.assert_array_equal(t.numpy().reshape(4, 2)[0], np.float32(student))
    weights = d.objective.prev_weights(4).numpy().reshape(4, 2)
    ab = SCHEDULE.alpha_bar_at(student)
    lands_on, next_ab = [states[2], end], [ab[1], SCHEDULE.alpha_bar_at(0.0)]
    estimate, h_prev = None, None
    for k in range(2):
        # zero error: D_k = target_k - (C / B)_k D_{k-1}
        d_k = target5[:, k] - (weights[:, k, None, None, None] * estimate if k else 0)
        landed, h_prev = dpm_solver_2m_step(x5[:, k], d_k, estimate, ab[k], next_ab[k], h_prev)
        np.testing.assert_allclose(landed, lands_on[k], atol=2e-5)  # float32 storage of x and the target
        estimate = d_k
    assert weights[0, 0] == 0 and weights[0, 1] != 0
    # the loss: the student's (= teacher's) x_0 estimates in that error, by hand
    eps = teacher_eps(x.numpy(), t.numpy()).astype(np.float64)
    ab_t = SCHEDULE.alpha_bar_at(t.numpy().astype(np.float64))[:, None, None, None]
    x0 = ((x.numpy() - np.sqrt(1 - ab_t) * eps) / np.sqrt(ab_t)).reshape(4, 2, 1, 12, 12)
    error = x0 - target5
    error[:, 1] += weights[:, 1, None, None, None] * x0[:, 0]
    with torch.no_grad():
        loss = float(d.objective.distill_loss(d.model, x, t, target, None, d.objective.prev_weights(4)))
    assert loss == pytest.approx(float(np.mean(error**2)), rel=1e-4) and loss > 0


def test_multistep_resume_is_bit_exact_and_keeps_the_fitted_times(capsys, teacher, tmp_path):
    from ddpm_training.distill.run import DistillRequest, run_distill
    from ddpm_training.train.session import Callbacks

    straight, split = tmp_path / "straight", tmp_path / "split"
    args = ["--out", straight, "--max-steps", "4", "--target", "multistep", *SMALL]
    assert run_ddpm(capsys, "distill", teacher, *args).code == 0
    options = {"batch_size": 8, "max_steps": 4, "checkpoint_every": 2}
    request = DistillRequest(
        teacher=teacher,
        out=split,
        distill_options={"calls": 2, "teacher_calls": 4, "target": "multistep"},
        train_options=options,
        precision="fp32",
        layout="contiguous",
    )
    done = []
    summary = run_distill(request, Callbacks(on_step=done.append, should_stop=lambda: len(done) >= 2))
    assert summary.step == 2
    from ddpm_training.distill import distiller as distill

    fits = []
    original = distill.fit_timesteps
    distill.fit_timesteps = lambda *a, **k: fits.append(1) or original(*a, **k)
    try:
        assert run_ddpm(capsys, "distill", "--resume", split / "checkpoint.pt").code == 0
    finally:
        distill.fit_timesteps = original
    assert fits == []  # the resumed run takes its times from the checkpoint
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][name], b[key][name]) for name in a[key]), key
    assert a["distill"] == b["distill"] and a["distill"]["sampler_options"] == {"x0": "none", "final": "step"}
    assert a["distill"]["timesteps"]["2"][-1] > 0


@pytest.mark.parametrize(("reuse", "loss"), [(1, "mse"), (2, "pseudo-huber")])
def test_resume_is_bit_exact(capsys, teacher, tmp_path, reuse, loss):
    """4 steps straight against 4 steps stopped after step 2 (as SIGTERM stops a run: the same target,
    so the cosine rate is the same) and resumed: bit for bit. With --reuse 2 the resumed run's first
    step draws fresh trajectories into the pool it restored."""
    from ddpm_training.distill.run import DistillRequest, run_distill
    from ddpm_training.train.session import Callbacks

    straight, split = tmp_path / "straight", tmp_path / "split"
    given = ["--reuse", reuse, "--loss", loss]
    result = run_ddpm(capsys, "distill", teacher, "--out", straight, "--max-steps", "4", *given, *SMALL)
    assert result.code == 0, result.err
    assert (f"from a pool of 16, each used {reuse}x on average" in result.err) == (reuse > 1)
    options = {"batch_size": 8, "max_steps": 4, "checkpoint_every": 2}
    request = DistillRequest(
        teacher=teacher,
        out=split,
        distill_options={"calls": 2, "teacher_calls": 4, "reuse": reuse, "loss": loss},
        train_options=options,
        precision="fp32",
        layout="contiguous",
    )
    done = []
    summary = run_distill(request, Callbacks(on_step=done.append, should_stop=lambda: len(done) >= 2))
    assert summary.stop_reason == "interrupted" and summary.step == 2
    result = run_ddpm(capsys, "distill", "--resume", split / "checkpoint.pt")
    assert result.code == 0, result.err
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 4
    for key in ("model", "ema", "teacher"):
        assert all(torch.equal(a[key][name], b[key][name]) for name in a[key]), key
    assert a["distill"] == b["distill"] and a["distill"]["sampler"] == "consistency"
    assert a["distill"]["reuse"] == reuse and ("pool" in a) == (reuse > 1) and a["distill"]["loss"] == loss
    if reuse > 1:
        assert torch.equal(a["pool"]["x"], b["pool"]["x"]) and a["pool"]["x"].shape == (16, 2, 1, 12, 12)
    assert sorted(p.name for p in (straight / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]


def test_student_exports_with_its_sampler_and_ddpm_run_uses_it(capsys, teacher, tmp_path):
    from ddpm_runtime.generate import SamplingSettings, generate
    from ddpm_runtime.onnx_model import load_onnx_model

    run = tmp_path / "student"
    assert run_ddpm(capsys, "distill", teacher, "--out", run, "--max-steps", "2", *SMALL).code == 0
    model_path = tmp_path / "student.onnx"
    assert run_ddpm(capsys, "export-onnx", run / "checkpoint.pt", "-o", model_path).code == 0
    model = load_onnx_model(model_path, "cpu")
    meta = model.metadata
    assert meta.default_sampling["sampler"] == "consistency" and meta.default_sampling["steps"] == 2
    times = student_times(SCHEDULE, DistillConfig(2, 4))
    assert meta.fitted_timesteps("consistency", 2).timesteps == tuple(times)
    assert meta.fitted_timesteps("consistency", 1).timesteps == (999.0,)
    assert meta.training["distilled"] == {"calls": 2, "teacher_calls": 4, "teacher_steps": 3, "target": "end"}
    assert "options" not in meta.default_sampling  # the consistency sampler as declared

    calls = []

    def counting(x, t, y=None):
        calls.append(float(t[0]))
        return model(x, t)

    sampled = run_ddpm_run(capsys, "sample", model_path, "-n", "3", "--out", tmp_path / "out")
    assert sampled.code == 0 and f"{model_path}: consistency, 2 steps" in sampled.err
    from ddpm_runtime.generate import model_defaults

    sampler, steps, options = model_defaults(meta, None, None)
    assert options == {}
    images = generate(counting, meta, SamplingSettings(num_images=3, sampler=sampler, steps=steps))
    assert calls == [float(np.float32(v)) for v in times] and images.shape == (3, 12, 12, 1)
    one = generate(model, meta, SamplingSettings(num_images=3, sampler="consistency", steps=1))
    x_T = np.stack([np.random.default_rng([0, i]).standard_normal((1, 12, 12)) for i in range(3)])
    expected = sample_consistency(model, x_T, SCHEDULE, np.array([999.0]))  # one call: x_0 from x_T, clipped
    np.testing.assert_array_equal(
        one, np.round((np.clip(expected, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)
    )
    info = run_ddpm_run(capsys, "info", model_path)
    assert "samples:    with consistency, 2 calls by default (distilled from a teacher of 3 steps)" in info.out


def one_step_student(capsys, teacher, tmp_path, target):
    """(path, ONNX model) of a student of ``target`` after one step, exported."""
    from ddpm_runtime.onnx_model import load_onnx_model

    run = tmp_path / "student"
    args = ["--out", run, "--max-steps", "1", "--target", target, *SMALL]
    assert run_ddpm(capsys, "distill", teacher, *args).code == 0
    model_path = tmp_path / "student.onnx"
    assert run_ddpm(capsys, "export-onnx", run / "checkpoint.pt", "-o", model_path).code == 0
    return model_path, load_onnx_model(model_path, "cpu")


def test_segment_student_samples_with_ddim_unclipped_by_default(capsys, teacher, tmp_path):
    from ddpm_runtime.samplers.ddim import sample_ddim

    model_path, model = one_step_student(capsys, teacher, tmp_path, "segment")
    meta = model.metadata
    assert meta.default_sampling["sampler"] == "ddim" and meta.default_sampling["options"] == {"eta": 0.0, "x0": "none"}
    assert [f.steps for f in meta.fitted] == [2] and meta.training["distilled"]["target"] == "segment"
    out = tmp_path / "out"
    sampled = run_ddpm_run(capsys, "sample", model_path, "-n", "2", "--out", out)
    assert sampled.code == 0 and f"{model_path}: ddim, 2 steps" in sampled.err
    x_T = np.stack([np.random.default_rng([0, i]).standard_normal((1, 12, 12)) for i in range(2)])
    times = student_times(SCHEDULE, DistillConfig(2, 4, target="segment"))
    expected = sample_ddim(model, x_T, SCHEDULE, times, x0="none")  # unclipped: clipping would change it
    images = np.load(out / "samples.npz")["arr_0"]
    np.testing.assert_array_equal(
        images, np.round((np.clip(expected, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)
    )
    info = run_ddpm_run(capsys, "info", model_path)
    assert "samples:    with ddim, 2 calls by default, eta 0.0, x0 none (distilled" in info.out


def test_multistep_student_samples_with_2m_landing_on_t0_by_default(capsys, teacher, tmp_path):
    from ddpm_runtime.generate import model_defaults

    model_path, model = one_step_student(capsys, teacher, tmp_path, "multistep")
    meta = model.metadata
    own = {"x0": "none", "final": "step"}
    assert meta.default_sampling["sampler"] == "dpm-solver++" and meta.default_sampling["options"] == own
    times = np.asarray(meta.fitted_timesteps("dpm-solver++", 2).timesteps)
    assert times[0] == 999.0 and times[-1] > 0
    # naming the student's own sampler keeps its options (its times need the landing step)
    assert model_defaults(meta, "dpm-solver++", None) == ("dpm-solver++", 2, own)
    assert model_defaults(meta, "ddim", None) == ("ddim", None, {})
    out = tmp_path / "out"
    sampled = run_ddpm_run(capsys, "sample", model_path, "-n", "2", "--out", out)
    assert sampled.code == 0 and f"{model_path}: dpm-solver++, 2 steps" in sampled.err
    x_T = np.stack([np.random.default_rng([0, i]).standard_normal((1, 12, 12)) for i in range(2)])
    expected = sample_dpm_solver_2m(model, x_T, SCHEDULE, times, x0="none", final="step")
    images = np.load(out / "samples.npz")["arr_0"]
    np.testing.assert_array_equal(
        images, np.round((np.clip(expected, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)
    )
    info = run_ddpm_run(capsys, "info", model_path)
    assert "samples:    with dpm-solver++, 2 calls by default, final step, x0 none (distilled" in info.out
    # its generator file draws with the student's own sampler, times and landing step, as ddpm-run does
    from ddpm_export.generator import export_generator
    from ddpm_export.generator.gate import compare
    from ddpm_runtime.generator_model import load_generator

    result = export_generator(model_path, tmp_path / "generator.onnx")
    entry = result.entry
    assert (entry.sampler, entry.steps, entry.timesteps) == ("dpm-solver++", 2, tuple(times))
    assert entry.options["final"] == "step" and entry.options["x0"] == "none" and entry.noise_draws == 0
    assert compare(model, load_generator(tmp_path / "generator.onnx", "cpu", threads=1), count=24).passed
    from_generator = run_ddpm_run(capsys, "sample", tmp_path / "generator.onnx", "-n", "2", "--out", tmp_path / "g")
    assert from_generator.code == 0 and "dpm-solver++, 2 steps" in from_generator.err
    drawn = np.load(tmp_path / "g" / "samples.npz")["arr_0"].astype(np.int16)
    assert np.abs(drawn - images).max() <= 1 and np.mean(drawn == images) >= 0.99  # float32 x_T in the generator


def test_refusals_are_one_line_errors(capsys, teacher, tmp_path):
    student = tmp_path / "student"
    assert run_ddpm(capsys, "distill", teacher, "--out", student, "--max-steps", "1", *SMALL).code == 0
    one = ["--max-steps", "1"]
    cases = [
        ([student / "checkpoint.pt", "--out", tmp_path / "a", *one], "is a distilled student, not a teacher"),
        ([teacher, "--out", tmp_path / "b", "--guidance-scale", "1", *one], "needs a class-conditional teacher"),
        (["--resume", teacher, "--max-steps", "1"], "is not a `ddpm distill` run"),
        ([teacher, "--out", tmp_path / "c", "--calls", "3", *one], "--calls 3 must divide --teacher-calls 8"),
        ([teacher, "--out", tmp_path / "e", "--reuse", "3", *one], "--reuse 3 must be at least 1 and divide the 16"),
        (["--resume", student / "checkpoint.pt", "--reuse", "2", *one], "cannot resume with --reuse 2"),
        (["--resume", student / "checkpoint.pt", "--loss", "pseudo-huber", *one], "cannot resume with --loss"),
        ([teacher, "--out", tmp_path / "d"], "give --max-steps or --max-minutes"),
        ([tmp_path / "missing.pt", "--max-steps", "1"], "no such checkpoint file"),
        ([teacher, "--out", student, "--max-steps", "1"], "a run already lives here"),
    ]  # fmt: skip
    for args, message in cases:
        result = run_ddpm(capsys, "distill", *args)
        assert result.code == 2 and len(error_lines(result)) == 1 and message in result.err, (args, result.err)
        assert "Traceback" not in result.err
    assert not any((tmp_path / name).exists() for name in "abcde")


def test_guided_student_learns_the_guided_teacher_and_samples_a_class_in_one_call_per_step(
    capsys, tiny_conditional_trained, tmp_path
):
    """A class-conditional teacher: trajectories drawn with guidance (two teacher calls per step), the
    student conditioned on the same labels; exported, `--class` sampling makes one call per step."""
    from ddpm_runtime.guidance import guided_eps_model
    from ddpm_runtime.onnx_model import load_onnx_model

    checkpoint = load_checkpoint(tiny_conditional_trained)
    config = TrainConfig(batch_size=8, lr=1e-4, max_steps=2)
    distill = DistillConfig(calls=2, teacher_calls=4, guidance_scale=2.0, null_share=0.5)
    d = student_trainer(Teacher.from_checkpoint(checkpoint, "teacher", 2.0), config, distill)
    _, _, target, y = d.objective.trajectories(4, d.generator)
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn((4, 1, 12, 12), generator=generator, dtype=torch.float64).numpy()
    classes = torch.randint(0, 3, (4,), generator=generator)
    labels = torch.where(torch.rand((4,), generator=generator) < 0.5, 3, classes).numpy()
    np.testing.assert_array_equal(y.numpy(), np.repeat(labels, 2))
    teacher = guided_eps_model(numpy_eps_model(d.eps_model()), labels, 3, 2.0)
    end = sample_dpm_solver_2m(teacher, x_T, SCHEDULE, sampling_timesteps(SCHEDULE, 4, "karras"))
    np.testing.assert_allclose(target.numpy().reshape(4, 2, 1, 12, 12)[:, 0], np.clip(end, -1, 1), atol=1e-6)

    run = tmp_path / "guided"
    args = ["--out", run, "--max-steps", "2", "--guidance-scale", "2", *SMALL]
    assert run_ddpm(capsys, "distill", tiny_conditional_trained, *args).code == 0
    model_path = tmp_path / "guided.onnx"
    assert run_ddpm(capsys, "export-onnx", run / "checkpoint.pt", "-o", model_path).code == 0
    meta = load_onnx_model(model_path, "cpu").metadata
    assert meta.default_sampling["guidance_scale"] == 0.0 and meta.training["distilled"]["guidance_scale"] == 2.0
    result = run_ddpm_run(capsys, "sample", model_path, "--class", "all", "--per-class", "2", "--out", tmp_path / "s")
    assert result.code == 0 and "consistency, 2 steps, 6 images" in result.err, result.err
    # one call per step: the request's guidance is the student's own 0, so no "no class" half is sent
    from ddpm_runtime.class_request import class_request
    from ddpm_runtime.generate import SamplingSettings, generate

    model = load_onnx_model(model_path, "cpu")
    request = class_request(model_path, meta, None, ("all",), 2, None)
    assert request.guidance_scale == 0.0
    rows = []

    def counting(x, t, y=None):
        rows.append(len(x))
        return model(x, t, y)

    settings = SamplingSettings(
        num_images=6,
        batch_size=16,
        sampler="consistency",
        steps=2,
        seed=0,
        options={},
        spacing=None,
        labels=request.labels,
        guidance_scale=0.0,
    )
    generate(counting, meta, settings)
    assert rows == [6, 6]
