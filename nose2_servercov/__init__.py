"""nose2-servercov: code coverage of a live server, as easy as coverage of a unit test.

The nose2 plugin is reachable from this module so that ``--plugin
nose2_servercov`` and ``[unittest] plugins = nose2_servercov`` load it.  The
public names are imported lazily: the server side (``nose2_servercov.flask``,
``.wsgi``) runs inside the app and must not pull in nose2 or requests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nose2_servercov.errors import ConfigError, DataError, ServercovError, ServerStartError

if TYPE_CHECKING:  # what the lazy names are, for type checkers (mypy --strict on user code)
    from nose2_servercov.plugin import ServerCoverage
    from nose2_servercov.testcase import ServerTestCase

_LAZY = {"ServerCoverage": "nose2_servercov.plugin", "ServerTestCase": "nose2_servercov.testcase"}

__all__ = ["ConfigError", "DataError", "ServerCoverage", "ServerStartError", "ServerTestCase",
           "ServercovError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
