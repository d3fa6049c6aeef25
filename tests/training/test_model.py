"""The U-Net is the seed's: parameter counts, state_dict compatibility and outputs against the seed's code."""

from __future__ import annotations

import json

import pytest
import torch

from ddpm_training.errors import TrainingError
from ddpm_training.model.config import PRESETS, UNetConfig
from ddpm_training.model.layers import SelfAttentionBlock, get_time_embedding
from ddpm_training.model.unet import Unet, count_parameters

from reference import seed_reference as seed


def test_parameter_counts_match_the_issue():
    assert count_parameters(Unet(PRESETS["seed"])) == 10_846_433
    assert count_parameters(Unet(PRESETS["seed-small"])) == 1_596_673
    assert count_parameters(Unet(PRESETS["tiny"])) < 10_000


@pytest.mark.parametrize("name,size,channels", [("tiny", 12, 1), ("seed-small", 28, 1), ("seed-small", 32, 3)])
def test_outputs_equal_the_seed_code_on_the_same_weights(name, size, channels):
    config = PRESETS[name].with_image(channels, size)
    torch.manual_seed(0)
    ours = Unet(config).eval()
    reference = seed.seed_unet_from_config(config).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)  # same names, same shapes
    x = torch.randn(3, channels, size, size)
    t = torch.tensor([0, 517, 999])
    with torch.no_grad():
        expected = reference(x, t)
        got = ours(x, t)
    assert got.shape == x.shape
    # Tolerance: the fused attention kernel sums in another order than nn.MultiheadAttention.
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=2e-5)


def test_full_seed_preset_runs_and_matches_reference():
    config = PRESETS["seed"]
    torch.manual_seed(1)
    ours = Unet(config).eval()
    reference = seed.seed_unet_from_config(config).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    x, t = torch.randn(1, 1, 28, 28), torch.tensor([250])
    with torch.no_grad():
        torch.testing.assert_close(ours(x, t), reference(x, t), rtol=1e-4, atol=2e-5)


def test_printed_seed_without_the_missing_line_fails():
    """Why the fix is needed: as printed, DownC never downsamples and the decoder cannot concatenate."""
    broken = seed.seed_unet_from_config(PRESETS["seed-small"], fixed=False)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        broken(torch.randn(1, 1, 28, 28), torch.tensor([5]))


def test_attention_equals_multihead_attention_forward_and_backward():
    torch.manual_seed(2)
    block = SelfAttentionBlock(64, num_groups=8, num_heads=4)
    reference = seed.SelfAttentionBlock(64, 8, 4)
    reference.load_state_dict(block.state_dict(), strict=True)
    x1 = torch.randn(2, 64, 14, 14, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = block(x1), reference(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(y1)
    y1.backward(grad)
    y2.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for (name, p1), p2 in zip(block.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_time_embedding_is_the_seeds_and_takes_fractional_t():
    t = torch.tensor([0, 1, 500, 999])
    torch.testing.assert_close(get_time_embedding(t, 128), seed.get_time_embedding(t, 128), rtol=0, atol=0)
    fractional = get_time_embedding(torch.tensor([10.5]), 16)
    assert fractional[0, 0].item() == pytest.approx(torch.sin(torch.tensor(10.5)).item())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name):
    config = PRESETS[name].with_image(3, 32)
    text = json.dumps(config.to_dict())  # what checkpoints, config.json and the ONNX metadata hold
    assert UNetConfig.from_dict(json.loads(text)) == config
    assert json.loads(text)["down_ch"] == list(config.down_ch)


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(image_size=30), "divisible by 4"),
        (dict(mid_ch=(64, 128)), "mid_ch\\[0\\]"),
        (dict(up_ch=(128, 64, 16, 8)), "up_ch needs"),
        (dict(t_emb_dim=7), "even"),
        (dict(down_ch=(32, 64, 132), mid_ch=(132, 128)), "divisible by num_groups"),
    ],
)
def test_invalid_configs_fail_with_a_sentence(changes, message):
    base = PRESETS["seed-small"].to_dict()
    base.update(changes)
    with pytest.raises(TrainingError, match=message):
        UNetConfig.from_dict(base)


def test_unknown_config_field_is_refused():
    with pytest.raises(TrainingError, match="unknown U-Net config field"):
        UNetConfig.from_dict({**PRESETS["tiny"].to_dict(), "dropout": 0.1})


def test_fast_preset_has_attention_only_at_14x14_and_below():
    config = PRESETS["fast"]
    model = Unet(config)
    assert count_parameters(model) == 1_578_785  # seed-small's 1,596,673 less two 28x28 attention blocks
    assert config.block_sizes() == ([28, 14], 7, [14, 28])
    assert [len(d.attn_block) for d in model.downs] == [0, 1]  # DownC at 28x28 has none
    assert [len(u.attn_block) for u in model.ups] == [1, 0]  # UpC at 28x28 has none
    assert [len(m.attn_block) for m in model.mids] == [1]
    # The same modules and names as seed-small otherwise: its state dict is seed-small's minus attention.
    small = set(Unet(PRESETS["seed-small"]).state_dict())
    fast = set(model.state_dict())
    assert fast < small and all(".attn_block." in key for key in small - fast)
    x = torch.randn(2, 1, 28, 28)
    assert model(x, torch.tensor([3.0, 700.5])).shape == x.shape
