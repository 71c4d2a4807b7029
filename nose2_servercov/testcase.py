"""ServerTestCase: unittest-style view tests that talk to the live server with requests."""

from __future__ import annotations

import os
import unittest
from typing import Any, ClassVar

import requests

from nose2_servercov.protocol import CONTEXT_HEADER, CONTEXTS_VARIABLE, URL_VARIABLE

__all__ = ["CONTEXTS_VARIABLE", "CONTEXT_HEADER", "URL_VARIABLE", "ServerTestCase"]


class ServerTestCase(unittest.TestCase):
    """A TestCase whose ``get``/``post``/... send requests to the server under test.

    The base URL comes from ``SERVERCOV_URL`` (set by ``nose2 --with-servercov``
    and ``servercov run``) or from the class attribute ``base_url``; ``prefix``
    is put between it and every path.  One ``requests.Session`` is shared by
    the class and every call has a timeout.
    """

    base_url: ClassVar[str | None] = None
    prefix: ClassVar[str] = ""
    timeout: ClassVar[float] = 10.0
    _session: ClassVar[requests.Session | None] = None

    @classmethod
    def tearDownClass(cls) -> None:
        """Close the class's session."""
        if cls._session is not None:
            cls._session.close()
            cls._session = None
        super().tearDownClass()

    @classmethod
    def session(cls) -> requests.Session:
        """Return the one session the class's requests go through."""
        if cls._session is None:
            cls._session = requests.Session()
        return cls._session

    def headers(self) -> dict[str, str]:
        """Return the headers sent with every request; override for auth tokens."""
        return {}

    def server_url(self) -> str:
        """Return the base URL of the server, or fail the test saying how to run it."""
        url = os.environ.get(URL_VARIABLE) or self.base_url
        if not url:
            raise RuntimeError(
                f"{type(self).__name__} needs a server: run the tests with "
                "'nose2 --with-servercov' or 'servercov run -- COMMAND', "
                f"or set {URL_VARIABLE} or the class attribute base_url")
        return url

    def url(self, path: str) -> str:
        """Return ``path`` joined to the base URL and ``prefix``, with single slashes."""
        parts = [self.server_url().rstrip("/"), self.prefix.strip("/"), path.lstrip("/")]
        return "/".join(part for part in parts[:2] if part) + "/" + parts[2]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request; per-call ``headers`` add to ``headers()`` and win on a name."""
        headers = {**self.headers(), **(kwargs.pop("headers", None) or {})}
        if os.environ.get(CONTEXTS_VARIABLE) == "test":
            headers.setdefault(CONTEXT_HEADER, self.id())
        kwargs.setdefault("timeout", self.timeout)
        return self.session().request(method, self.url(path), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """Send a GET request."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """Send a POST request."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        """Send a PUT request."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        """Send a PATCH request."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        """Send a DELETE request."""
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        """Send a HEAD request."""
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> requests.Response:
        """Send an OPTIONS request."""
        return self.request("OPTIONS", path, **kwargs)
