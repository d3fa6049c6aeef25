"""The training package's one exception type for user mistakes."""

from ddpm_runtime.errors import UserError


class TrainingError(UserError):
    """Bad data, options, checkpoints or output folders. The CLI prints one line and exits 2."""
