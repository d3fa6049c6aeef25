"""The objective's pieces against hand-computed values: noise levels, parameterisations, loss weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_runtime.schedule import NoiseSchedule
from ddpm_training.diffusion.forward import ForwardProcess
from ddpm_training.diffusion.objective import NoiseLevels, diffusion_loss
from ddpm_training.diffusion.parameterisation import EpsNetwork, Parameterisation, eps_network

SCHEDULE = NoiseSchedule.from_config()
KINDS = [Parameterisation("epsilon"), Parameterisation("v"), Parameterisation("edm", 0.5), Parameterisation("edm", 1.3)]


def test_v_and_edm_targets_by_hand():
    # ab = 0.64: sqrt(ab) = 0.8, sqrt(1 - ab) = 0.6, sigma = 0.75
    ab = torch.tensor([[[[0.64]]]], dtype=torch.float64)
    x0, noise = torch.full((1, 1, 1, 1), 1.0, dtype=torch.float64), torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64)
    x_t = 0.8 * 1.0 + 0.6 * 0.5  # 1.1
    assert float(Parameterisation("v").target(x0, noise, ab)) == pytest.approx(0.8 * 0.5 - 0.6 * 1.0)  # -0.2
    # EDM, sd = 0.5: x = x_t / 0.8 = 1.375, c_skip = 0.25 / (0.5625 + 0.25), c_out = 0.75 * 0.5 / sqrt(0.8125)
    c_skip, c_out, c_in = 0.25 / 0.8125, 0.375 / math.sqrt(0.8125), 1 / math.sqrt(0.8125)
    edm = Parameterisation("edm", 0.5)
    assert float(edm.target(x0, noise, ab)) == pytest.approx((1.0 - c_skip * 1.375) / c_out)
    assert float(edm.network_input(torch.full_like(x0, x_t), ab)) == pytest.approx(c_in * 1.375)
    assert float(edm.x0_error_scale(ab)) == pytest.approx(c_out)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.kind}-{k.sigma_data}")
def test_the_target_output_gives_the_true_noise_and_errors_scale_as_declared(kind):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand((5, 1, 3, 3), generator=gen, dtype=torch.float64) * 2 - 1
    noise = torch.randn((5, 1, 3, 3), generator=gen, dtype=torch.float64)
    ab = torch.tensor(SCHEDULE.alpha_bars[[0, 10, 300, 700, 999]])[:, None, None, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    target = kind.target(x0, noise, ab)
    torch.testing.assert_close(kind.eps(target, x_t, ab), noise, rtol=0, atol=1e-9)
    # An output error delta moves x0_hat = (x_t - sqrt(1 - ab) eps_hat) / sqrt(ab) by x0_error_scale * delta.
    delta = torch.randn(target.shape, generator=gen, dtype=torch.float64) * 1e-3
    x0_hat = (x_t - (1 - ab).sqrt() * kind.eps(target + delta, x_t, ab)) / ab.sqrt()
    torch.testing.assert_close((x0_hat - x0).abs(), kind.x0_error_scale(ab) * delta.abs(), rtol=1e-6, atol=1e-9)


def test_edm_with_unit_sigma_data_is_v_with_its_sign_flipped():
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.randn((4, 1, 2, 2), generator=gen), torch.randn((4, 1, 2, 2), generator=gen)
    ab = torch.tensor(SCHEDULE.alpha_bars[[1, 50, 500, 990]], dtype=torch.float32)[:, None, None, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    edm, v = Parameterisation("edm", 1.0), Parameterisation("v")
    torch.testing.assert_close(edm.target(x0, noise, ab), -v.target(x0, noise, ab), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(edm.network_input(x_t, ab), x_t, rtol=1e-5, atol=1e-6)


def test_min_snr_for_v_is_hang_et_al_weight():
    forward = ForwardProcess(SCHEDULE)
    gen = torch.Generator().manual_seed(2)
    x0, noise = torch.rand((4, 1, 3, 3), generator=gen) * 2 - 1, torch.randn((4, 1, 3, 3), generator=gen)
    t = torch.tensor([0, 100, 400, 999])
    model = lambda x, t: 0.3 * x  # noqa: E731  any fixed prediction
    v = Parameterisation("v")
    got = diffusion_loss(model, forward, x0, noise, t, v, "min-snr", 5.0)
    ab = torch.tensor(SCHEDULE.alpha_bars[t.numpy()], dtype=torch.float64)
    snr = ab / (1 - ab)
    x_t = ab.sqrt()[:, None, None, None] * x0 + (1 - ab).sqrt()[:, None, None, None] * noise
    target = ab.sqrt()[:, None, None, None] * noise - (1 - ab).sqrt()[:, None, None, None] * x0
    per_row = ((0.3 * x_t - target) ** 2).mean(dim=(1, 2, 3))
    expected = (per_row * torch.clamp(snr, max=5.0) / (snr + 1)).mean()  # Hang et al. 2023, v form
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_fractional_times_follow_the_runtime_schedule():
    forward = ForwardProcess(SCHEDULE)
    t = torch.tensor([0.0, 0.5, 17.25, 998.9, 999.0], dtype=torch.float32)
    expected = SCHEDULE.alpha_bar_at(t.double().numpy())
    np.testing.assert_allclose(forward.alpha_bar_at(t).numpy(), expected, rtol=1e-6)
    integer = torch.tensor([0, 17, 999])
    np.testing.assert_array_equal(
        forward.alpha_bar_at(integer).numpy(), SCHEDULE.alpha_bars[[0, 17, 999]].astype(np.float32)
    )
    # the exported wrapper's float32 table gives the same alpha_bar
    wrapper = EpsNetwork(torch.nn.Identity(), Parameterisation("v"), SCHEDULE.alpha_bars)
    np.testing.assert_allclose(wrapper.alpha_bar(t).numpy(), expected, rtol=2e-6)


def test_log_normal_noise_levels():
    forward = ForwardProcess(SCHEDULE)
    sigma = torch.tensor([0.005, 0.02, 0.3, 1.0, 7.0, 150.0, 1e4], dtype=torch.float64)
    t = forward.time_of_sigma(sigma)
    assert t[0] == 0.0 and t[-1] == 999.0  # outside the schedule's range: clamped to its ends
    inside = forward.alpha_bar_at(t[1:-1]).double()
    np.testing.assert_allclose(inside.numpy(), (1 / (1 + sigma[1:-1] ** 2)).numpy(), rtol=1e-5)

    levels = NoiseLevels("log-normal", forward, p_mean=-1.2, p_std=1.2)
    draws = levels.draw(20_000, torch.Generator().manual_seed(0))
    assert draws.dtype == torch.float32 and float(draws.min()) >= 0.0 and float(draws.max()) <= 999.0
    ab = forward.alpha_bar_at(draws).double()
    log_sigma = 0.5 * torch.log((1 - ab) / ab)
    inner = log_sigma[(draws > 0) & (draws < 999)]
    # median and spread of ln sigma: N(-1.2, 1.2^2) (20,000 draws: standard error of the median ~0.01)
    assert float(inner.median()) == pytest.approx(-1.2, abs=0.05)
    assert float(((log_sigma > -2.4) & (log_sigma < 0.0)).double().mean()) == pytest.approx(0.6827, abs=0.02)
    # the seed's draw, unchanged: torch.randint over 0..T-1 from the same generator
    uniform = NoiseLevels("uniform", forward).draw(8, torch.Generator().manual_seed(3))
    torch.testing.assert_close(uniform, torch.randint(0, 1000, (8,), generator=torch.Generator().manual_seed(3)))


def test_logsnr_uniform_noise_levels():
    # the linear schedule's ends: alpha_bar(0) = 1 - 1e-4, so log SNR = log(9999) = 9.2102; alpha_bar(999) = 4.0358e-5
    forward = ForwardProcess(SCHEDULE)
    ab_end = float(np.prod(1 - np.linspace(1e-4, 0.02, 1000)))
    high, low = math.log(0.9999 / 1e-4), math.log(ab_end / (1 - ab_end))
    assert high == pytest.approx(9.2102, abs=1e-4) and low == pytest.approx(-10.1177, abs=1e-4)
    draws = NoiseLevels("logsnr-uniform", forward).draw(20_000, torch.Generator().manual_seed(0))
    assert draws.dtype == torch.float32 and float(draws.min()) >= 0.0 and float(draws.max()) <= 999.0
    ab = forward.alpha_bar_at(draws).double()
    log_snr = torch.log(ab / (1 - ab))
    assert float(log_snr.min()) >= low - 1e-3 and float(log_snr.max()) <= high + 1e-3
    # uniform: each of four equal log-SNR intervals holds a quarter (20,000 draws: standard error 0.003)
    edges = np.linspace(low, high, 5)
    counts = np.histogram(log_snr.numpy(), bins=edges)[0] / 20_000
    np.testing.assert_allclose(counts, 0.25, atol=0.015)
    # against the seed's uniform t, which puts half its rows below log SNR -2.47 (t >= 500)
    assert float((log_snr < -2.47).double().mean()) == pytest.approx((-2.47 - low) / (high - low), abs=0.015)


def test_eps_network_is_the_network_itself_for_epsilon():
    net = torch.nn.Conv2d(1, 1, 1)
    assert eps_network(net, Parameterisation("epsilon"), SCHEDULE.alpha_bars) is net
    wrapped = eps_network(net, Parameterisation("v"), SCHEDULE.alpha_bars)
    assert isinstance(wrapped, EpsNetwork) and wrapped.network is net


def test_the_wrappers_schedule_table_lives_where_the_network_does():
    """A v network trained on CUDA crashed at its first preview grid: the wrapper's alpha_bar table
    stayed on the CPU and was indexed with CUDA times (seen on a GPU). The meta device stands in for
    a GPU here: the wrapper must follow the network to any device."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)

        def forward(self, x, t):
            return self.conv(x)

    net = Net().to("meta")
    wrapped = eps_network(net, Parameterisation("v"), SCHEDULE.alpha_bars)
    assert wrapped.log_alpha_bars.device.type == "meta"
    out = wrapped(torch.zeros(2, 1, 4, 4, device="meta"), torch.tensor([0.5, 900.0], device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 1, 4, 4)


def test_the_default_objective_is_the_seeds_step_with_the_seeds_random_numbers():
    """One default Trainer step against the step written out by hand: initial weights from the seed,
    the epoch's permutation, integer t ~ U{0..T-1} then the noise from one generator, L_simple, the
    global-norm clip at 1 and Adam (0.9, 0.999): the same weights bit for bit."""
    from ddpm_runtime.images import to_model_range
    from ddpm_runtime.schedule import ScheduleConfig
    from ddpm_training.data import ImageData
    from ddpm_training.model.config import preset
    from ddpm_training.model.unet import Unet
    from ddpm_training.train.config import TrainConfig
    from ddpm_training.train.data_objective import data_trainer

    images = np.random.default_rng(5).integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
    config = preset("tiny").with_image(1, 12)
    trainer = data_trainer(config, ScheduleConfig(), TrainConfig(batch_size=8, lr=1e-3), ImageData(images, None, "gen"))
    trainer.train_step()

    torch.manual_seed(0)
    model = Unet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), fused=True)
    generator = torch.Generator().manual_seed(0)
    order = np.random.default_rng([0, 0]).permutation(16)[:8]
    t = torch.randint(0, 1000, (8,), generator=generator)
    noise = torch.randn((8, 1, 12, 12), generator=generator)
    x0 = to_model_range(torch.tensor(images[order]).permute(0, 3, 1, 2).float())
    ab = torch.tensor(SCHEDULE.alpha_bars)
    x_t = (ab**0.5).float()[t][:, None, None, None] * x0 + ((1 - ab) ** 0.5).float()[t][:, None, None, None] * noise
    loss = torch.nn.functional.mse_loss(model(x_t, t), noise)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    for (name, ours), theirs in zip(trainer.model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
