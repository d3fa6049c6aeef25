"""The export package's exception types."""

from ddpm_runtime.errors import UserError


class ExportError(UserError):
    """A user mistake (bad checkpoint, unwritable path, bad option): one line, exit code 2."""


class ParityError(Exception):
    """The exported model disagrees with PyTorch beyond the tolerance: exit code 1, no file kept."""

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report
