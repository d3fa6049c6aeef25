"""ddpm_training: the seed's DDPM U-Net and its training on MNIST-format data."""

__version__ = "0.1.0"

from .config import PRESETS, UNetConfig, preset  # noqa: E402
from .errors import TrainingError  # noqa: E402
from .unet import Unet  # noqa: E402

__all__ = ["PRESETS", "TrainingError", "UNetConfig", "Unet", "__version__", "preset"]
