"""Django helper: servercov's control route as a middleware, for any server Django runs on.

Add it first in ``MIDDLEWARE``::

    MIDDLEWARE = ["nose2_servercov.django.ServercovMiddleware", ...]

Without ``SERVERCOV_TOKEN`` Django drops it at start-up (``MiddlewareNotUsed``),
so the same settings ship to production.  With it, ``POST /servercov/shutdown/``
(setting ``SERVERCOV_SHUTDOWN_PATH`` to change it) carrying the token answers,
then stops the server the way it stops itself: ``runserver`` (reloader on or
off), gunicorn, uWSGI, uvicorn and hypercorn (Django's ASGI handler) alike.
The middleware works in sync and async stacks.  A thin layer over the core in
:mod:`nose2_servercov.app`; the Django-specific part is following a response
until Django has finished it (``request_finished``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from nose2_servercov.app import stopping
from nose2_servercov.app.contexts import switch_if_wanted
from nose2_servercov.app.gate import Gate, run_token
from nose2_servercov.protocol import (
    CONTEXT_HEADER,
    DEFAULT_SHUTDOWN_PATH,
    SHUTDOWN_PATH_SETTING,
    TOKEN_HEADER,
    TOKEN_VARIABLE,
)


class ServercovMiddleware:
    """Answer servercov's token-gated shutdown route; pass every other request on."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.conf import settings  # type: ignore[import-untyped]
        from django.core.exceptions import MiddlewareNotUsed  # type: ignore[import-untyped]

        if not run_token():
            raise MiddlewareNotUsed(f"{TOKEN_VARIABLE} is not set: no servercov route")
        self.get_response = get_response
        self.gate = Gate(getattr(settings, SHUTDOWN_PATH_SETTING, DEFAULT_SHUTDOWN_PATH))
        self.switch_context = switch_if_wanted()
        if self.switch_context is not None:
            from django.core.signals import request_finished  # type: ignore[import-untyped]

            # Connected after the apps' own receivers: those run inside the request's turn.
            request_finished.connect(_finished, weak=False, dispatch_uid="servercov-contexts")
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        answer = self._control(request)
        if answer is not None:
            return answer
        if self.switch_context is None:
            return self.get_response(request)
        release = self.switch_context.hold(_label(request))
        try:
            response = self.get_response(request)
        except BaseException:
            release()
            raise
        return _release_when_finished(response, release)

    async def _acall(self, request: Any) -> Any:
        answer = self._control(request)
        if answer is not None:
            return answer
        if self.switch_context is None:
            return await self.get_response(request)
        release = await self.switch_context.hold_async(_label(request))
        try:
            response = await self.get_response(request)
        except BaseException:
            release()
            raise
        return _release_when_finished(response, release)

    def _control(self, request: Any) -> Any:
        """Return the route's answer for a control request, None for any other."""
        from django.http import JsonResponse  # type: ignore[import-untyped]

        if not self.gate.is_for(request.path, request.path_info):
            return None
        answer = self.gate.answer(request.headers.get(TOKEN_HEADER, ""))
        response = JsonResponse(answer.payload, status=answer.status)
        if answer.stops:
            sent = threading.Event()
            # Every Django handler closes the response once it is sent.
            response._resource_closers.append(sent.set)
            stopping.stop_after(sent, request.META)
        return response


def _label(request: Any) -> str:
    return str(request.headers.get(CONTEXT_HEADER) or "")


# The release of the request whose response is being closed in this thread: set by
# the response's resource closer, taken by the request_finished receiver.
_closing = threading.local()


def _release_when_finished(response: Any, release: Callable[[], None]) -> Any:
    """Release the test context once Django has finished ``response``.

    Django's ``response.close()``, called by every handler once the response is
    sent (a streaming body included), runs the resource closers and then sends
    ``request_finished``; the context is held through the receivers of that
    signal too, which are the app's code.  A response that cannot be followed
    so is released at once.
    """
    closers = getattr(response, "_resource_closers", None)
    if not isinstance(closers, list):
        release()
        return response

    def closing() -> None:
        pending = getattr(_closing, "release", None)
        if pending is not None:  # a close() whose signal never came: never hold for good
            pending()
        _closing.release = release
    closers.append(closing)
    return response


def _finished(**_: Any) -> None:
    pending = getattr(_closing, "release", None)
    _closing.release = None
    if pending is not None:
        pending()

