"""The control route's gate: is a request for the route, does it carry the token, the answers.

The route exists only when ``SERVERCOV_TOKEN`` is set (servercov sets it for
the servers it starts), and answers only requests carrying that token, so the
same app can ship to production: there the helpers pass every request on.
The WSGI, ASGI and Django helpers each read the path and the token header
their own way and send the same :class:`Answer`.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from nose2_servercov.protocol import DEFAULT_SHUTDOWN_PATH, TOKEN_HEADER, TOKEN_VARIABLE


def run_token() -> str:
    """Return the run's token, empty when servercov does not run this app (no route then)."""
    return os.environ.get(TOKEN_VARIABLE, "")


def token_matches(given: str | bytes, token: str) -> bool:
    """Return whether ``given`` is ``token``, compared in constant time."""
    if isinstance(given, str):
        given = given.encode("latin-1", "replace")
    return bool(token) and hmac.compare_digest(given, token.encode())


def is_control_path(shutdown_path: str, full_path: str, inner_path: str) -> bool:
    """Return whether a request is for ``shutdown_path``, with or without its mount prefix.

    ``full_path`` holds the prefix the app is mounted under (WSGI's
    ``SCRIPT_NAME``, ASGI's ``root_path``), ``inner_path`` does not: the route
    may be configured either way.
    """
    wanted = shutdown_path.strip("/")
    return wanted in (inner_path.strip("/"), full_path.strip("/"))


@dataclass(frozen=True)
class Answer:
    """One answer of the control route: a JSON payload, and whether the server stops after it."""

    status: int
    reason: str
    payload: dict[str, Any] = field(hash=False)
    stops: bool

    @property
    def body(self) -> bytes:
        """Return the payload as the bytes of the response body."""
        return json.dumps(self.payload).encode()

    @property
    def status_line(self) -> str:
        """Return the status as WSGI's ``start_response`` takes it (``"202 Accepted"``)."""
        return f"{self.status} {self.reason}"

    def headers(self) -> list[tuple[str, str]]:
        """Return the response headers of the answer."""
        return [("Content-Type", "application/json"), ("Content-Length", str(len(self.body)))]


FORBIDDEN = Answer(403, "Forbidden", {"error": f"{TOKEN_HEADER} is missing or wrong"},
                   stops=False)
STOPPING = Answer(202, "Accepted", {"status": "stopping"}, stops=True)


class Gate:
    """The token-gated control route of one app: the route's path and the run's token."""

    def __init__(self, shutdown_path: str = DEFAULT_SHUTDOWN_PATH,
                 token: str | None = None) -> None:
        self.token = token if token is not None else run_token()
        self._wanted = shutdown_path.strip("/")  # what a request's path is compared with

    @property
    def active(self) -> bool:
        """Return whether the route exists: servercov runs the app (a token is set)."""
        return bool(self.token)

    def is_for(self, full_path: str, inner_path: str) -> bool:
        """Return whether the route exists and a request is for it (see :func:`is_control_path`).

        :func:`is_control_path`, inlined: every request of the app comes here.
        """
        return bool(self.token) and self._wanted in (inner_path.strip("/"), full_path.strip("/"))

    def answer(self, given_token: str | bytes) -> Answer:
        """Return the answer to a request for the route carrying ``given_token``."""
        return STOPPING if token_matches(given_token, self.token) else FORBIDDEN
