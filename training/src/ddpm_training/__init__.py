"""ddpm_training: the seed's DDPM U-Net and its training on MNIST-format data."""

__version__ = "0.1.0"

from .errors import TrainingError
from .model.config import PRESETS, UNetConfig, preset
from .model.unet import Unet

__all__ = ["PRESETS", "TrainingError", "UNetConfig", "Unet", "__version__", "preset"]
