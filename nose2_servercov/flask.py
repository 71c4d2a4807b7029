"""Flask helper: servercov's token-gated control route for a Flask app.

A thin layer over :mod:`nose2_servercov.wsgi`, so Flask and plain WSGI apps
stop the same way on every server.
"""

from __future__ import annotations

from typing import Any

from nose2_servercov.protocol import DEFAULT_SHUTDOWN_PATH
from nose2_servercov.wsgi import wrap


def init_app(app: Any, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> Any:
    """Add the shutdown route to ``app`` when ``SERVERCOV_TOKEN`` is set; return ``app``."""
    app.wsgi_app = wrap(app.wsgi_app, shutdown_path=shutdown_path)
    return app
