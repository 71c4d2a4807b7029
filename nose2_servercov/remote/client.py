"""Talk to one agent (``servercov serve --control``): its status, its data, and why it failed.

Every request carries the bearer token when there is one; HTTPS verifies the
agent's certificate.  What goes wrong becomes one line that says what to do:
a 401 names where the token comes from, a connection error says why.  What
the agent sends with its data is read here: the content type that says it is
coverage data, the headers that say the data is not whole or carry a warning.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coverage import CoverageData
from coverage.exceptions import CoverageException

from nose2_servercov import protocol
from nose2_servercov.errors import ServercovError


class AgentError(ServercovError):
    """An agent could not be reached or did not answer as expected."""


@dataclass
class AgentAnswer:
    """What one agent returned: a local data file, or why there is none."""

    url: str
    data_file: str | None = None
    error: str | None = None
    problem: str | None = None  # the data came, but the agent says it is not whole
    warning: str | None = None
    seconds: float = 0.0
    size: int = 0


def request(method: str, url: str, *, token: str | None, timeout: float,
            ) -> tuple[int, dict[str, str], bytes]:
    """Send one request to an agent; return (status, headers, body); raise OSError.

    HTTPS verifies the agent's certificate against the system's CAs (or
    ``SSL_CERT_FILE``, which OpenSSL reads for a private CA).
    """
    parts = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except ssl.SSLError as exc:
        raise OSError(f"TLS: {exc.reason or exc}") from None
    except http.client.HTTPException as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def explain_status(status: int, body: bytes) -> str:
    """Return why an agent's answer with ``status`` (not 200) gives no data, in a few words."""
    text = body.decode("utf-8", "replace").strip().splitlines()
    said = f" ({text[0][:200]})" if text else ""
    if status == 401:
        return (f"401: the agent wants a token{said}; set {protocol.CONTROL_TOKEN_VARIABLE} "
                "or --control-token-file")
    if status == 403:
        return f"403: the agent refused the token{said}"
    return f"answered {status}{said}"


def reason(exc: BaseException) -> str:
    """Return why a request failed, in a few words (``no answer in time``...)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def agent_status(url: str, *, token: str | None, timeout: float) -> dict[str, Any]:
    """Return an agent's ``/status``; raise AgentError if it does not answer with one."""
    try:
        status, _, body = request("GET", url + "/status", token=token, timeout=timeout)
    except OSError as exc:
        raise AgentError(f"{url}: {reason(exc)}") from None
    if status != 200:
        raise AgentError(f"{url}: {explain_status(status, body)}")
    try:
        answer = json.loads(body)
    except ValueError:
        raise AgentError(f"{url}: /status is not JSON: is it a servercov agent?") from None
    if not isinstance(answer, dict):
        raise AgentError(f"{url}: /status is not a JSON object")
    return answer


def fetch(url: str, *, stop: bool, token: str | None, timeout: float,
          target: str) -> AgentAnswer:
    """Ask one agent for its data (``/stop`` or ``/snapshot``); write it to ``target``."""
    answer = AgentAnswer(url)
    started = time.monotonic()
    try:
        status, headers, body = request("POST", url + ("/stop" if stop else "/snapshot"),
                                        token=token, timeout=timeout)
    except OSError as exc:
        answer.error = f"cannot fetch its data: {reason(exc)}"
        return answer
    answer.seconds = time.monotonic() - started
    if status != 200:
        answer.error = explain_status(status, body)
        return answer
    if headers.get("content-type", "").split(";")[0].strip() != protocol.AGENT_DATA_TYPE:
        answer.error = (f"answered {headers.get('content-type') or 'no content type'}, not "
                        f"{protocol.AGENT_DATA_TYPE}: is it a servercov agent?")
        return answer
    answer.problem = headers.get(protocol.AGENT_PROBLEM_HEADER.lower())
    answer.warning = headers.get(protocol.AGENT_WARNING_HEADER.lower())
    Path(target).write_bytes(body)
    try:  # a whole, readable coverage data file, or nothing counted
        check = CoverageData(target)
        check.read()
        check.measured_files()
        check.close(force=True)
    except (CoverageException, OSError) as exc:
        os.unlink(target)
        answer.error = f"sent data that coverage cannot read: {exc}"
        return answer
    answer.data_file, answer.size = target, len(body)
    return answer
