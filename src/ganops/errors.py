"""User-facing errors: each message names the cause and the fix.

The CLI prints ``error: <message>`` on one line and exits with ``exit_code``; nothing else
in the package catches these, so a failing stage never writes a half output.
"""


class GanopsError(Exception):
    """Base class for errors a user can cause and fix."""

    exit_code = 2


class ConfigError(GanopsError):
    """params.yaml is missing, unreadable or fails validation."""


class DataError(GanopsError):
    """Input data is missing, corrupt or does not match what a stage expects."""


class TrainingError(GanopsError):
    """Training cannot start or diverged."""


class ExportError(GanopsError):
    """The ONNX export failed its checks."""


class RegistryError(GanopsError):
    """The model registry is unreachable or refused a write."""


class TransientRegistryError(RegistryError):
    """The registry could not be reached or was busy; retrying later may succeed."""


class ServeError(GanopsError):
    """The model to serve is missing, corrupt, unverified or cannot run on the requested provider."""
