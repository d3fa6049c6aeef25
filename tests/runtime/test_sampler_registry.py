"""One sampler interface, found by name: every registered sampler runs through generate() and the CLI
with the same arguments, and a new sampler needs no change outside its file and the registry."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ddpm_runtime.errors import UserError
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.metadata import ImageSpec, ModelMetadata
from ddpm_runtime.samplers import REGISTRY, SamplerSpec
from ddpm_runtime.schedule import ScheduleConfig

from cli_helpers import run_ddpm_run

METADATA = ModelMetadata(ImageSpec(1, 4, 4), ScheduleConfig(), "epsilon", {}, {}, {})


class CountingModel:
    """eps = 0.1 x; counts calls and rows, so the number of model calls is measured, not assumed."""

    def __init__(self):
        self.calls, self.timesteps = 0, []

    def __call__(self, x, t):
        assert x.dtype == np.float32 and t.dtype == np.float32 and t.shape == (x.shape[0],)
        self.calls += 1
        self.timesteps.append(float(t[0]))
        return 0.1 * x


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_sampler_makes_one_model_call_per_step(name):
    model = CountingModel()
    images = generate(model, METADATA, SamplingSettings(num_images=3, batch_size=2, sampler=name, steps=7, seed=1))
    assert images.shape == (3, 4, 4, 1)
    assert model.calls == 2 * 7  # two batches, seven steps each
    assert model.timesteps[:7] == sorted(model.timesteps[:7], reverse=True) and model.timesteps[0] == 999


def test_cli_choices_and_defaults_come_from_the_registry(capsys):
    help_text = re.sub(r"-\s+", "-", " ".join(run_ddpm_run(capsys, "sample", "--help").out.split()))  # unwrap
    for spec in REGISTRY.values():
        assert spec.name in help_text and f"{spec.name} {spec.default_steps or 'T'}" in help_text
        for option in spec.options:
            assert option.flag in help_text


def test_a_new_sampler_is_one_function_and_one_registry_entry(monkeypatch):
    def sample_x0_only(eps_model, x_T, schedule, timesteps, *, rng=None, callback=None, damping=1.0):
        """One model call: x_0 from x_T at the first timestep (a 1-step DDIM), scaled by ``damping``."""
        t = timesteps[0]
        eps = eps_model(x_T.astype(np.float32), np.full((len(x_T),), t, np.float32))
        alpha_bar = schedule.alpha_bar_at(t)  # timesteps may be fractional
        return damping * (x_T - np.sqrt(1 - alpha_bar) * eps) / np.sqrt(alpha_bar)

    from ddpm_runtime.samplers.interface import SamplerOption

    spec = SamplerSpec("x0-only", sample_x0_only, 1, "test sampler", (SamplerOption("damping", "--damping", 1.0, "h"),))
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    model = CountingModel()
    full = generate(model, METADATA, SamplingSettings(num_images=2, sampler="x0-only", seed=3))
    half = generate(
        model, METADATA, SamplingSettings(num_images=2, sampler="x0-only", seed=3, options={"damping": 0.5})
    )
    assert model.calls == 2 and not np.array_equal(full, half)
    with pytest.raises(UserError, match="--damping applies to the x0-only sampler only"):
        generate(model, METADATA, SamplingSettings(sampler="ddim", options={"damping": 0.5}))


def test_unknown_sampler_and_option_values_are_user_errors():
    with pytest.raises(UserError, match="unknown sampler 'euler'"):
        SamplingSettings(sampler="euler").validate(1000)
    with pytest.raises(UserError, match=r"--eta must be in \[0, 1\]"):
        SamplingSettings(sampler="ddim", options={"eta": 1.5}).validate(1000)
    with pytest.raises(UserError, match="--eta applies to the ddim sampler only"):
        SamplingSettings(sampler="dpm-solver++", options={"eta": 0.5}).validate(1000)
    with pytest.raises(UserError, match="--x0 must be one of none, clip, dynamic"):
        SamplingSettings(sampler="ddim", options={"x0": "static"}).validate(1000)
    with pytest.raises(UserError, match="unknown --spacing 'cosine'"):
        SamplingSettings(spacing="cosine").validate(1000)
    SamplingSettings(sampler="ddpm", options={"eta": 0.0}).validate(1000)  # a neutral value asks for nothing


def test_the_default_settings_make_20_model_calls_per_image():
    model = CountingModel()
    generate(model, METADATA, SamplingSettings(num_images=5, batch_size=5))
    assert model.calls == 20
    assert model.timesteps[0] == 999 and model.timesteps[-1] == 0  # logsnr: the last call at t = 0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_registry_defaults_are_what_runs(name, monkeypatch):
    """An option left out takes the default the registry declares (and --help shows), not the sampler
    function's own keyword default: dpm-solver++ and ddim clip x_0 unless told otherwise."""
    from dataclasses import replace

    spec, received = REGISTRY[name], []

    def recording(*args, **kwargs):
        received.append({k: v for k, v in kwargs.items() if k not in ("rng", "callback")})
        return spec.sample(*args, **kwargs)

    monkeypatch.setitem(REGISTRY, name, replace(spec, sample=recording))
    generate(CountingModel(), METADATA, SamplingSettings(num_images=2, sampler=name, steps=4))
    assert received == [{option.name: option.default for option in spec.options}]
    if name in ("ddim", "dpm-solver++"):
        assert received[0]["x0"] == "clip"
