"""Deprecated: the measured run moved to :mod:`nose2_servercov.engine.run`.

Kept for one release so that code importing ``nose2_servercov.session`` keeps
working; it will be removed in the next one.
"""

from nose2_servercov.engine.run import ServerSession

__all__ = ["ServerSession"]
