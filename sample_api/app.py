"""Application factory: configuration, error handlers and the servercov hooks.

A factory (rather than a module-level app) lets tests and servers pick their own
database and token, and keeps import of the package free of side effects.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from nose2_servercov.flask import init_app as servercov_init_app
from sample_api import db
from sample_api.views import api

DEFAULT_TOKEN = "sample-token"
ERROR_CODES = (400, 401, 404, 405, 409, 500)


def create_app(database: str | None = None) -> Flask:
    """Build the app.

    The database is ``database``, else ``$SAMPLE_API_DB``, else a fresh temporary
    file for this process, so a run never writes into the repository. Servers with
    several worker processes must set ``SAMPLE_API_DB`` to share one database.
    """
    app = Flask(__name__, static_folder=None)  # a JSON API serves no static files
    app.config["DATABASE"] = database or os.environ.get("SAMPLE_API_DB") or _temp_database()
    app.config["API_TOKEN"] = os.environ.get("SAMPLE_API_TOKEN", DEFAULT_TOKEN)

    db.init_db(app)
    app.register_blueprint(api)
    for code in ERROR_CODES:
        app.register_error_handler(code, _json_error)
    # Adds the token-gated shutdown route only when SERVERCOV_TOKEN is set, so
    # the coverage data of a measured server is saved before it exits.
    servercov_init_app(app, shutdown_path="/0.0/shutdown/")
    return app


def _json_error(error: HTTPException) -> tuple[Response, int]:
    """Answer every error as JSON, like the successful responses, never as HTML."""
    response = jsonify(success=False, error=error.description)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return response, error.code or 500


def _temp_database() -> str:
    """Create a throw-away database file, removed when the creating process exits."""
    fd, path = tempfile.mkstemp(prefix="sample_api-", suffix=".sqlite3")
    os.close(fd)
    owner = os.getpid()

    def remove() -> None:
        # Forked children inherit atexit handlers; only the creator deletes the file.
        if os.getpid() == owner:
            with contextlib.suppress(OSError):
                os.unlink(path)

    atexit.register(remove)
    return path
