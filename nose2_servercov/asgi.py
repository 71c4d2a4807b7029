"""ASGI middleware with servercov's control route, for FastAPI, Starlette and any ASGI app.

The same contract as :mod:`nose2_servercov.wsgi`, over the same core
(:mod:`nose2_servercov.app`): the route exists only when ``SERVERCOV_TOKEN``
is set, answers only requests whose ``X-Servercov-Token`` header carries it
(compared in constant time), then stops the server it runs under (uvicorn,
hypercorn, gunicorn's uvicorn workers) the server's own orderly way, so
lifespan shutdown code runs and is measured.  Lifespan and websocket traffic
pass through untouched.

    app = FastAPI(...)
    nose2_servercov.asgi.init_app(app)      # FastAPI / Starlette
    application = nose2_servercov.asgi.wrap(application)   # any ASGI app
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nose2_servercov.app import stopping
from nose2_servercov.app.contexts import switch_if_wanted
from nose2_servercov.app.gate import Answer, Gate, run_token
from nose2_servercov.protocol import CONTEXT_HEADER, DEFAULT_SHUTDOWN_PATH, TOKEN_HEADER, asgi_key

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_SCOPE_HEADER = asgi_key(TOKEN_HEADER)
CONTEXT_SCOPE_HEADER = asgi_key(CONTEXT_HEADER)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value)
    return None


def _paths(scope: Scope) -> tuple[str, str]:
    """Return the request's path with its mount prefix (``root_path``) and without it."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", "")).rstrip("/")
    # Servers disagree on whether ``path`` holds ``root_path`` (ASGI says it does).
    if root and path.startswith(root + "/"):
        return path, path[len(root):]
    return root + path, path


class ServercovMiddleware:
    """Wrap an ASGI app; add the token-gated shutdown route when servercov runs it."""

    def __init__(self, app: ASGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH,
                 token: str | None = None) -> None:
        self.app = app
        self.gate = Gate(shutdown_path, token)
        self.switch_context = switch_if_wanted()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not self.gate.active:
            return await self.app(scope, receive, send)
        if not self.gate.is_for(*_paths(scope)):
            if self.switch_context is None:
                return await self.app(scope, receive, send)
            # One request at a time, from its start until the app has sent its
            # last byte and returned (streaming bodies, background tasks included).
            label = (_header(scope, CONTEXT_SCOPE_HEADER) or b"").decode("latin-1")
            release = await self.switch_context.hold_async(label)
            try:
                return await self.app(scope, receive, send)
            finally:
                release()
        answer = self.gate.answer(_header(scope, TOKEN_SCOPE_HEADER) or b"")
        await _send(send, answer)
        if answer.stops:
            # The server has the whole answer: stop as soon as the stop's thread runs.
            stopping.stop_after(stopping.answer_sent(), {})


async def _send(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in answer.headers()]})
    await send({"type": "http.response.body", "body": answer.body})


def wrap(app: ASGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> ASGIApp:
    """Return ``app`` with servercov's control route, or ``app`` itself without a token."""
    if not run_token():
        return app
    return ServercovMiddleware(app, shutdown_path=shutdown_path)


def init_app(app: Any, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> Any:
    """Add the route to a FastAPI or Starlette ``app`` when ``SERVERCOV_TOKEN`` is set."""
    if run_token():
        app.add_middleware(ServercovMiddleware, shutdown_path=shutdown_path)
    return app
