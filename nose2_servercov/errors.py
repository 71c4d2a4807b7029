"""The small exception tree of nose2-servercov.

Library code raises these; only the front ends (the nose2 plugin, the
``servercov`` command) turn them into a ``servercov:`` line and a failed run.
"""

from __future__ import annotations


class ServercovError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(ServercovError):
    """A config value is missing, unknown or not of the expected form."""


class ServerStartError(ServercovError):
    """The server could not be started or never became ready."""


class DataError(ServercovError):
    """The coverage data could not be combined or reported."""


class ServeError(ServercovError):
    """No ``servercov serve`` runs here, or it did not answer in time."""


class LostDataError(DataError):
    """Measured server processes lost their data and nothing is left to report."""


def describe_os_error(exc: OSError) -> str:
    """Return 'reason: path' for an OSError, the way a user reads it."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


def describe_error(exc: BaseException) -> str:
    """Return the one line that tells the user what went wrong (the front ends' last net)."""
    if isinstance(exc, ServercovError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"{type(exc).__name__}: {exc}"
