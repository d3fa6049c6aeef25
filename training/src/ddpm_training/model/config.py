"""The U-Net's configuration: a typed dataclass with a JSON round trip, and named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import TrainingError


@dataclass(frozen=True)
class UNetConfig:
    im_channels: int = 1  # 1 for MNIST-style grey images, 3 for RGB; set from the data when training
    image_size: int = 28  # height = width; must be divisible by 2 for every True in down_sample
    # The seed's full configuration (its `Unet` comments): four encoder widths, three decoder stages.
    down_ch: tuple[int, ...] = (32, 64, 128, 256)
    mid_ch: tuple[int, ...] = (256, 256, 128)
    up_ch: tuple[int, ...] = (256, 128, 64, 16)
    down_sample: tuple[bool, ...] = (True, True, False)  # per DownC; the decoder mirrors it reversed
    t_emb_dim: int = 128  # sinusoidal embedding width, also the width of the time MLP (seed: 128)
    num_downc_layers: int = 2
    num_midc_layers: int = 2
    num_upc_layers: int = 2
    num_groups: int = 8  # GroupNorm groups everywhere (seed: 8); every normalised width must divide by it
    num_heads: int = 4  # attention heads (seed: 4); every attention width must divide by it
    # Self-attention only in blocks whose feature maps are at most this many pixels on a side; None:
    # in every block, as the seed. At 28x28 attention runs over 784 positions and is most of a step's
    # time; Ho et al. 2020 put it at 16x16 only.
    attention_max_size: int | None = None
    # Class conditioning (Ho and Salimans 2022): K > 0 adds a learned embedding of K + 1 rows to the
    # time embedding, row K being "no class". 0: the unconditional model of the seed, unchanged.
    num_classes: int = 0

    @property
    def null_class(self) -> int | None:
        """The "no class" index of a conditional model (the last embedding row), None when unconditional."""
        return self.num_classes if self.num_classes else None

    def __post_init__(self) -> None:
        # Lists from JSON become tuples, so configs compare and hash by value.
        for name in ("down_ch", "mid_ch", "up_ch", "down_sample"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    # ---- validation: follow the channels through the seed's wiring, so a bad config fails here with
    # a sentence instead of deep inside a forward pass with a shape error.
    def validate(self) -> None:
        def fail(message: str) -> None:
            raise TrainingError(f"invalid U-Net config: {message}")

        for name in ("im_channels", "image_size", "t_emb_dim", "num_groups", "num_heads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.attention_max_size is not None and (
            not isinstance(self.attention_max_size, int) or self.attention_max_size < 1
        ):
            fail(f"attention_max_size must be a positive integer or None, got {self.attention_max_size!r}")
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 0:
            fail(f"num_classes must be 0 (unconditional) or a positive integer, got {self.num_classes!r}")
        for name in ("num_downc_layers", "num_midc_layers", "num_upc_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.t_emb_dim % 2:
            fail(f"t_emb_dim must be even (sin half, cos half), got {self.t_emb_dim}")
        if len(self.down_ch) < 2 or len(self.mid_ch) < 2:
            fail("down_ch and mid_ch need at least two entries")
        if len(self.down_sample) != len(self.down_ch) - 1:
            fail(f"down_sample needs {len(self.down_ch) - 1} entries (one per DownC), got {len(self.down_sample)}")
        if len(self.up_ch) != len(self.down_ch):
            fail(f"up_ch needs {len(self.down_ch)} entries (one UpC per DownC), got {len(self.up_ch)}")
        if self.mid_ch[0] != self.down_ch[-1]:
            fail(f"mid_ch[0]={self.mid_ch[0]} must equal down_ch[-1]={self.down_ch[-1]}")
        factor = 2 ** sum(bool(d) for d in self.down_sample)
        if self.image_size % factor:
            fail(f"image_size {self.image_size} must be divisible by {factor} (one halving per down_sample)")

        # Every width meets a GroupNorm (NormActConv normalises its input); attention runs on outputs.
        normed = set(self.down_ch) | set(self.mid_ch) | set(self.up_ch)
        attended = set(self.down_ch[1:]) | set(self.mid_ch[1:]) | set(self.up_ch[1:])
        skips = list(self.down_ch[:-1])
        current = self.mid_ch[-1]
        for i, up in enumerate(reversed(self.down_sample)):
            c_in, skip = self.up_ch[i], skips.pop()
            if up:
                if current != c_in:
                    fail(f"UpC {i} upsamples {current} channels but up_ch[{i}]={c_in}")
                upsampled = 2 * (c_in // 2 // 2)  # Upsample(c_in, c_in // 2): two branches of out // 2
            else:
                upsampled = current
            if upsampled + skip != c_in:
                fail(f"UpC {i} gets {upsampled} + {skip} (skip) channels but up_ch[{i}]={c_in}")
            current = self.up_ch[i + 1]
        for width in sorted(normed):
            if width % self.num_groups:
                fail(f"channel width {width} is not divisible by num_groups={self.num_groups}")
        for width in sorted(attended):
            if width % self.num_heads:
                fail(f"channel width {width} is not divisible by num_heads={self.num_heads}")

    # ---- JSON round trip
    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("down_ch", "mid_ch", "up_ch", "down_sample"):
            data[name] = list(data[name])
        if not self.num_classes:
            # An unconditional model's config has no num_classes key, so its checkpoints, config.json
            # and exported metadata are the same as those of versions without class conditioning.
            del data["num_classes"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        if not isinstance(data, dict):
            raise TrainingError(f"U-Net config must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise TrainingError(f"unknown U-Net config field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise TrainingError(f"invalid U-Net config: {exc}") from None

    def block_sizes(self) -> tuple[list[int], int, list[int]]:
        """Feature-map side of each DownC, of the MidC stack, and of each UpC (after its upsampling)."""
        down = [self.image_size // 2 ** sum(map(bool, self.down_sample[:i])) for i in range(len(self.down_sample))]
        mid = self.image_size // 2 ** sum(map(bool, self.down_sample))
        return down, mid, list(reversed(down))

    def attends(self, size: int) -> bool:
        return self.attention_max_size is None or size <= self.attention_max_size

    def with_image(self, channels: int, size: int) -> UNetConfig:
        return replace(self, im_channels=channels, image_size=size)

    def with_classes(self, num_classes: int) -> UNetConfig:
        return replace(self, num_classes=num_classes)


# The reduced configuration the seed actually trains ("to save time"): 1,596,673 parameters.
_SEED_SMALL = UNetConfig(
    down_ch=(32, 64, 128),
    mid_ch=(128, 128),
    up_ch=(128, 64, 16),
    down_sample=(True, True),
    num_downc_layers=1,
    num_midc_layers=1,
    num_upc_layers=1,
)

PRESETS: dict[str, UNetConfig] = {
    # The seed's full configuration: 10,846,433 parameters at 1x28x28.
    "seed": UNetConfig(),
    "seed-small": _SEED_SMALL,
    # seed-small with self-attention only at 14x14 and below (for 28x28 data): the 784-position
    # attention at 28x28 is most of seed-small's step time (docs/benchmarks/speed.md, "Presets").
    "fast": replace(_SEED_SMALL, attention_max_size=14),
    # Same wiring at toy widths (6,071 parameters at 1x28x28), for tests that must run in seconds.
    # GroupNorm uses 4 groups here because the narrowest width is 4.
    "tiny": UNetConfig(
        down_ch=(4, 8),
        mid_ch=(8, 8),
        up_ch=(8, 4),
        down_sample=(True,),
        t_emb_dim=8,
        num_groups=4,
        num_downc_layers=1,
        num_midc_layers=1,
        num_upc_layers=1,
    ),
}


DEFAULT_PRESET = "seed-small"  # what the seed itself trains; `ddpm train` uses it when no --preset is given


def preset(name: str) -> UNetConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise TrainingError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
