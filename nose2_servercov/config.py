"""Deprecated: the config moved to :mod:`nose2_servercov.engine.config`.

Kept for one release so that code importing ``nose2_servercov.config`` keeps
working; it will be removed in the next one.
"""

from nose2_servercov.engine.config import *  # noqa: F403
from nose2_servercov.engine.config import (  # noqa: F401  (the names callers used)
    KEYS,
    SECTION,
    ServerConfig,
    find_rcfile,
    load_config,
)
