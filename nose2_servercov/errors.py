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
