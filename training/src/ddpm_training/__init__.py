"""ddpm_training: the seed's DDPM U-Net and its training on MNIST-format data."""

__version__ = "0.1.0"

from .config import PRESETS, UNetConfig, preset
from .errors import TrainingError
from .unet import Unet

__all__ = ["PRESETS", "TrainingError", "UNetConfig", "Unet", "__version__", "preset"]
