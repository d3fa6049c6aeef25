"""Each NumPy sampler step equals a torch reference of the same equations on identical inputs and noise,
and a whole trajectory of torch model + torch sampler equals ONNX Runtime + NumPy sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_runtime.samplers import ddim_step, ddpm_step, dpm_solver_2m_sde_step, dpm_solver_2m_step, sample_ddim
from ddpm_runtime.samplers.thresholding import threshold_x0
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import spaced_timesteps
from ddpm_training.model.config import UNetConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import load_checkpoint

from reference import torch_samplers as ref

TOL = 1e-5  # the per-step tolerance
SCHEDULE = NoiseSchedule.from_config()
AB = torch.tensor(SCHEDULE.alpha_bars)


def arrays(seed, shape=(3, 1, 6, 6)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("t", [0, 1, 2, 10, 500, 998, 999])
def test_ddpm_step_equals_the_seeds_reverse_process(t):
    x, eps, z = arrays(t)
    seed_process = ref.SeedReverseProcess()
    expected_x, expected_x0 = seed_process.sample_prev_timestep(
        torch.tensor(x), torch.tensor(eps), torch.tensor(t), torch.tensor(z)
    )
    got_x, got_x0 = ddpm_step(x, eps, SCHEDULE.alpha_bars[t], SCHEDULE.alpha_bars_prev[t], z if t > 0 else None)
    np.testing.assert_allclose(got_x, expected_x.numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(got_x0, expected_x0.numpy(), atol=TOL, rtol=0)


def test_ddpm_step_float32_seed_matches_too():
    """The seed computed its schedule in float32; the difference stays within the tolerance."""
    t = 700
    x, eps, z = arrays(7)
    seed32 = ref.SeedReverseProcess(dtype=torch.float32)
    expected, _ = seed32.sample_prev_timestep(
        torch.tensor(x).float(), torch.tensor(eps).float(), torch.tensor(t), torch.tensor(z).float()
    )
    got, _ = ddpm_step(x, eps, SCHEDULE.alpha_bars[t], SCHEDULE.alpha_bars_prev[t], z)
    np.testing.assert_allclose(got, expected.double().numpy(), atol=TOL)


@pytest.mark.parametrize("t", [1, 250, 999])
def test_ddpm_mean_from_clipped_x0_is_eq7(t):
    x, eps, _ = arrays(t + 100)
    expected = ref.ddpm_clipped_mean(torch.tensor(x), torch.tensor(eps), AB[t], AB[t - 1])
    z = np.zeros_like(x)
    got, _ = ddpm_step(x, eps, SCHEDULE.alpha_bars[t], SCHEDULE.alpha_bars[t - 1], z, x0_mode="clip")
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("t,t_prev,eta", [(999, 979, 0.0), (500, 400, 0.5), (20, 0, 1.0), (99, -1, 0.0)])
def test_ddim_step_equals_reference(t, t_prev, eta):
    x, eps, z = arrays(t)
    prev = AB[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    expected = ref.ddim_step(torch.tensor(x), torch.tensor(eps), AB[t], prev, eta, torch.tensor(z))
    got, _ = ddim_step(x, eps, SCHEDULE.alpha_bars[t], float(prev), eta, z if eta > 0 else None)
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("first_order", [True, False])
def test_dpm_solver_pp_step_equals_reference(first_order):
    t_prev, s, t = 999, 899, 799
    x, x0_s, x0_prev = arrays(3)
    lam = lambda ab: float(np.log(np.sqrt(ab) / np.sqrt(1 - ab)))  # noqa: E731
    h_prev = None if first_order else lam(SCHEDULE.alpha_bars[s]) - lam(SCHEDULE.alpha_bars[t_prev])
    got, h = dpm_solver_2m_step(
        x, x0_s, None if first_order else x0_prev, SCHEDULE.alpha_bars[s], SCHEDULE.alpha_bars[t], h_prev
    )
    lambda_prev = torch.tensor(lam(SCHEDULE.alpha_bars[t_prev]), dtype=torch.float64)
    expected = ref.dpm_solver_pp_2m_step(
        torch.tensor(x), torch.tensor(x0_s), None if first_order else torch.tensor(x0_prev), AB[s], AB[t], lambda_prev
    )
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)
    assert h > 0


@pytest.mark.parametrize("calls", [3, 5, 7])
def test_dpm_solver_pp_3m_equals_the_reference_loop(calls):
    """Whole runs (orders 1, 2, 3 ..., 2, then the final jump) against the reference code's multistep
    loop, written out in torch, on random linear eps-models: same model answers, same maths."""
    from ddpm_runtime.samplers import sample_dpm_solver_3m
    from ddpm_runtime.timesteps import sampling_timesteps

    rng = np.random.default_rng(calls)
    weights = rng.standard_normal((calls, 1, 1, 6, 6)) * 0.3
    x_T = rng.standard_normal((3, 1, 6, 6))
    times = sampling_timesteps(SCHEDULE, calls, "karras")
    index = {float(np.float32(t)): i for i, t in enumerate(times)}  # the model sees float32 t

    def eps_model(x, t):  # a different linear map at every call, so every stored x_0 matters
        return (np.tanh(x.astype(np.float64)) * weights[index[float(t[0])]] + 0.1 * x).astype(np.float32)

    got = sample_dpm_solver_3m(eps_model, x_T, SCHEDULE, times)
    expected = ref.dpm_solver_pp_multistep_torch(
        lambda x, i: eps_model(x, np.full((len(x),), times[i], np.float32)),
        torch.tensor(x_T),
        SCHEDULE.alpha_bar_at(times),
    )
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


def test_dpm_solver_pp_3m_step_orders():
    from ddpm_runtime.samplers.dpm_solver_3m import step_orders

    assert step_orders(1) == [1]
    assert step_orders(5) == [1, 2, 3, 2, 1]
    assert step_orders(10) == [1, 2, 3, 3, 3, 3, 3, 3, 2, 1]


def test_whole_trajectory_torch_reference_vs_onnx_numpy(tiny_onnx, tiny_trained):
    """torch model + torch DDIM against ONNX Runtime + NumPy DDIM: 50 steps, eta 0, same x_T."""
    ckpt = load_checkpoint(tiny_trained)
    model = Unet(UNetConfig.from_dict(ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["ema"])
    timesteps = spaced_timesteps(1000, 50)
    x_T = np.random.default_rng(0).standard_normal((4, 1, 12, 12))
    expected = ref.sample_ddim_torch(model, torch.tensor(x_T), AB, timesteps).numpy()
    got = sample_ddim(load_onnx_model(tiny_onnx, "cpu"), x_T, SCHEDULE, timesteps)
    assert np.abs(got - expected).max() <= 1e-3


# ---- x_0 handling and the stochastic solver (the few-step issue)


@pytest.mark.parametrize("mode", ["clip", "dynamic"])
def test_x0_thresholding_equals_reference(mode):
    x0 = 3.0 * np.random.default_rng(5).standard_normal((4, 1, 6, 6))  # far outside [-1, 1]
    got = threshold_x0(x0, mode)
    np.testing.assert_allclose(got, ref.threshold_x0(torch.tensor(x0), mode).numpy(), atol=TOL, rtol=0)
    assert np.abs(got).max() <= 1.0


@pytest.mark.parametrize("mode,eta", [("clip", 0.0), ("dynamic", 0.0), ("clip", 0.7)])
def test_ddim_step_with_bounded_x0_equals_reference(mode, eta):
    t, t_prev = 700, 600
    x, eps, z = arrays(11)
    x = 3.0 * x  # so that x_0 estimates leave the data range
    expected = ref.ddim_step_bounded_x0(
        torch.tensor(x), torch.tensor(eps), AB[t], AB[t_prev], eta, torch.tensor(z), mode
    )
    got, _ = ddim_step(x, eps, SCHEDULE.alpha_bars[t], SCHEDULE.alpha_bars[t_prev], eta, z if eta else None, mode)
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("mode", ["clip", "dynamic"])
def test_ddpm_step_with_bounded_x0_is_eq7(mode):
    t = 300
    x, eps, z = arrays(12)
    x0 = ref.threshold_x0((torch.tensor(3 * x) - torch.sqrt(1 - AB[t]) * torch.tensor(eps)) / torch.sqrt(AB[t]), mode)
    alpha = AB[t] / AB[t - 1]
    mean = (AB[t - 1].sqrt() * (1 - alpha) * x0 + alpha.sqrt() * (1 - AB[t - 1]) * torch.tensor(3 * x)) / (1 - AB[t])
    variance = (1 - AB[t - 1]) / (1 - AB[t]) * (1 - alpha)
    expected = mean + variance.sqrt() * torch.tensor(z)
    got, _ = ddpm_step(3 * x, eps, SCHEDULE.alpha_bars[t], SCHEDULE.alpha_bars[t - 1], z, x0_mode=mode)
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("first_order", [True, False])
def test_dpm_solver_pp_2m_sde_step_equals_k_diffusion(first_order):
    t_prev, s, t = 999.0, 850.5, 700.25  # fractional times: alpha_bar from the schedule's interpolation
    x, x0_s, x0_prev = arrays(13)
    z = np.random.default_rng(14).standard_normal(x.shape)
    ab_s, ab_t = (float(SCHEDULE.alpha_bar_at(v)) for v in (s, t))
    h_prev = None if first_order else float(SCHEDULE.log_snr(s) - SCHEDULE.log_snr(t_prev))
    got, h = dpm_solver_2m_sde_step(x, x0_s, None if first_order else x0_prev, ab_s, ab_t, h_prev, z)
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    expected = ref.dpm_solver_pp_2m_sde_step_kdiffusion(
        torch.tensor(x),
        torch.tensor(x0_s),
        None if first_order else torch.tensor(x0_prev),
        f64(ab_s),
        f64(ab_t),
        None if first_order else f64(h_prev),
        torch.tensor(z),
    )
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)
    assert h > 0


def test_dpm_solver_pp_2m_sde_lands_on_the_denoised_estimate():
    x, x0_s, _ = arrays(15)
    got, h = dpm_solver_2m_sde_step(x, x0_s, None, float(SCHEDULE.alpha_bars[3]), 1.0, None, None)
    np.testing.assert_array_equal(got, x0_s)
    assert h == np.inf
