"""ddpm_runtime: the torch-free part of ddpm-onnx (schedule, samplers, image output)."""

from .errors import UserError
from .schedule import NoiseSchedule, ScheduleConfig

__version__ = "0.1.0"

__all__ = ["NoiseSchedule", "ScheduleConfig", "UserError", "__version__"]
