"""WSGI middleware with servercov's control route, for any WSGI app and server.

The route exists only when ``SERVERCOV_TOKEN`` is set (servercov sets it for
the servers it starts), and answers only requests carrying that token, so the
same app can ship to production: there the middleware passes every request on.
A thin layer over :mod:`nose2_servercov.app` (the gate, the test contexts, and
the stop of every server it knows).

    application = nose2_servercov.wsgi.wrap(application)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nose2_servercov.app import stopping
from nose2_servercov.app.contexts import ReleaseAfterClose, end_turn, switch_if_wanted
from nose2_servercov.app.gate import Gate, is_control_path, run_token, token_matches
from nose2_servercov.protocol import (
    CONTEXT_HEADER,
    DEFAULT_SHUTDOWN_PATH,
    TOKEN_HEADER,
    TOKEN_VARIABLE,
    wsgi_key,
)

__all__ = ["DEFAULT_SHUTDOWN_PATH", "TOKEN_VARIABLE", "ServercovMiddleware", "WSGIApp",
           "is_control_path", "token_matches", "wrap"]

WSGIApp = Callable[..., Iterable[bytes]]

TOKEN_ENVIRON_KEY = wsgi_key(TOKEN_HEADER)
CONTEXT_ENVIRON_KEY = wsgi_key(CONTEXT_HEADER)


class ServercovMiddleware:
    """Wrap a WSGI app; add the token-gated shutdown route when servercov runs it."""

    def __init__(self, app: WSGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH,
                 token: str | None = None) -> None:
        self.app = app
        self.gate = Gate(shutdown_path, token)
        self.switch_context = switch_if_wanted()

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer the control route; run the app for any other request.

        Under ``contexts = test`` the app runs in its turn and under its test's
        label.  One frame for every request: this runs on each of them.
        """
        inner = environ.get("PATH_INFO", "")
        if self.gate.is_for(environ.get("SCRIPT_NAME", "") + inner, inner):
            return self._control(environ, start_response)
        switch = self.switch_context
        if switch is None:
            return self.app(environ, start_response)
        lock = switch.take(environ.get(CONTEXT_ENVIRON_KEY) or "")
        try:
            return ReleaseAfterClose(self.app(environ, start_response), lock)
        except BaseException:
            if lock is not None:
                end_turn(lock)
            raise

    def _control(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer a request for the control route: stop the server if its token is right."""
        answer = self.gate.answer(environ.get(TOKEN_ENVIRON_KEY, ""))
        start_response(answer.status_line, answer.headers())
        if not answer.stops:
            return [answer.body]
        return stopping.StopAfterResponse(answer.body, environ)


def wrap(app: WSGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> WSGIApp:
    """Return ``app`` with servercov's control route, or ``app`` itself without a token."""
    if not run_token():
        return app
    return ServercovMiddleware(app, shutdown_path=shutdown_path)
