"""Django helper: servercov's control route as a middleware, for any server Django runs on.

Add it first in ``MIDDLEWARE``::

    MIDDLEWARE = ["nose2_servercov.django.ServercovMiddleware", ...]

Without ``SERVERCOV_TOKEN`` Django drops it at start-up (``MiddlewareNotUsed``),
so the same settings ship to production.  With it, ``POST /servercov/shutdown/``
(setting ``SERVERCOV_SHUTDOWN_PATH`` to change it) carrying the token answers,
then stops the server the way it stops itself: ``runserver`` (reloader on or
off), gunicorn, uWSGI, uvicorn and hypercorn (Django's ASGI handler) alike.
The middleware works in sync and async stacks.  A thin layer over the core in
:mod:`nose2_servercov.wsgi`.
"""

from __future__ import annotations

import os
import threading
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


class ServercovMiddleware:
    """Answer servercov's token-gated shutdown route; pass every other request on."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.conf import settings  # type: ignore[import-untyped]
        from django.core.exceptions import MiddlewareNotUsed  # type: ignore[import-untyped]

        self.token = os.environ.get(TOKEN_VARIABLE, "")
        if not self.token:
            raise MiddlewareNotUsed("SERVERCOV_TOKEN is not set: no servercov route")
        self.get_response = get_response
        self.shutdown_path = getattr(settings, "SERVERCOV_SHUTDOWN_PATH", DEFAULT_SHUTDOWN_PATH)
        self.switch_context = (_ContextSwitch() if os.environ.get(CONTEXTS_VARIABLE) == "test"
                               else None)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        answer = self._control(request)
        return self.get_response(request) if answer is None else answer

    async def _acall(self, request: Any) -> Any:
        answer = self._control(request)
        return await self.get_response(request) if answer is None else answer

    def _control(self, request: Any) -> Any:
        """Return the route's answer for a control request, None for any other."""
        from django.http import JsonResponse  # type: ignore[import-untyped]

        if not is_control_path(self.shutdown_path, request.path, request.path_info):
            label = request.headers.get("X-Servercov-Context")
            if label and self.switch_context is not None:
                self.switch_context(label)
            return None
        if not token_matches(request.headers.get("X-Servercov-Token", ""), self.token):
            return JsonResponse({"error": "X-Servercov-Token is missing or wrong"}, status=403)
        response = JsonResponse({"status": "stopping"}, status=202)
        sent = threading.Event()
        # Every Django handler closes the response once it is sent.
        response._resource_closers.append(sent.set)
        stop_after(sent, dict(request.META))
        return response
