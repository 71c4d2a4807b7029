"""ASGI middleware with servercov's control route, for FastAPI, Starlette and any ASGI app.

The same contract as :mod:`nose2_servercov.wsgi`, over the same core: the
route exists only when ``SERVERCOV_TOKEN`` is set, answers only requests whose
``X-Servercov-Token`` header carries it (compared in constant time), then stops
the server it runs under (uvicorn, hypercorn, gunicorn's uvicorn workers) the
server's own orderly way, so lifespan shutdown code runs and is measured.
Lifespan and websocket traffic pass through untouched.

    app = FastAPI(...)
    nose2_servercov.asgi.init_app(app)      # FastAPI / Starlette
    application = nose2_servercov.asgi.wrap(application)   # any ASGI app
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nose2_servercov.wsgi import (
    CONTEXTS_VARIABLE,
    DEFAULT_SHUTDOWN_PATH,
    TOKEN_VARIABLE,
    _ContextSwitch,
    is_control_path,
    stop_after,
    token_matches,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER = b"x-servercov-token"
CONTEXT_HEADER = b"x-servercov-context"


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
        self.shutdown_path = shutdown_path
        self.token = token if token is not None else os.environ.get(TOKEN_VARIABLE, "")
        self.switch_context = (_ContextSwitch() if os.environ.get(CONTEXTS_VARIABLE) == "test"
                               else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not self.token:
            return await self.app(scope, receive, send)
        if not is_control_path(self.shutdown_path, *_paths(scope)):
            if self.switch_context is None:
                return await self.app(scope, receive, send)
            # One request at a time, from its start until the app has sent its
            # last byte and returned (streaming bodies, background tasks included).
            label = (_header(scope, CONTEXT_HEADER) or b"").decode("latin-1")
            release = await self.switch_context.hold_async(label)
            try:
                return await self.app(scope, receive, send)
            finally:
                release()
        if not token_matches(_header(scope, TOKEN_HEADER) or b"", self.token):
            return await _answer(send, 403, {"error": "X-Servercov-Token is missing or wrong"})
        await _answer(send, 202, {"status": "stopping"})
        sent = threading.Event()
        sent.set()  # the server has the whole answer: stop as soon as the thread runs
        stop_after(sent, {})


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def wrap(app: ASGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> ASGIApp:
    """Return ``app`` with servercov's control route, or ``app`` itself without a token."""
    if not os.environ.get(TOKEN_VARIABLE):
        return app
    return ServercovMiddleware(app, shutdown_path=shutdown_path)


def init_app(app: Any, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> Any:
    """Add the route to a FastAPI or Starlette ``app`` when ``SERVERCOV_TOKEN`` is set."""
    if os.environ.get(TOKEN_VARIABLE):
        app.add_middleware(ServercovMiddleware, shutdown_path=shutdown_path)
    return app
