"""Talk to one agent (``servercov serve --control``): its status, its data, and why it failed.

Every request carries the bearer token when there is one; HTTPS verifies the
agent's certificate.  What goes wrong becomes one line that says what to do:
a 401 names where the token comes from, a connection error says why.  What
the agent sends with its data is read here: the content type that says it is
coverage data, the headers that say the data is not whole or carry a warning.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from coverage import CoverageData
from coverage.exceptions import CoverageException

from nose2_servercov import protocol
from nose2_servercov.errors import ServercovError
from nose2_servercov.remote import untrusted


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


# The largest answer written to disk: a coverage data file of a big app is tens of MB.
MAX_DATA_BYTES = 256 * 1024 * 1024
MAX_TEXT_BYTES = 1024 * 1024  # of a /status answer or an error's body
_CHUNK = 64 * 1024


class AnswerTooLarge(OSError):
    """An agent's answer is over its size cap."""


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Return the context that verifies agents: ``--control-ca``, else the system's CAs.

    Without ``ca_file``, OpenSSL also reads ``SSL_CERT_FILE`` (a private CA).
    """
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise AgentError(f"--control-ca {untrusted.shown(ca_file or '')}: cannot load it: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


@contextlib.contextmanager
def exchange(method: str, url: str, *, token: str | None, timeout: float,
             ca_file: str | None = None) -> Iterator[http.client.HTTPResponse]:
    """Send one request to an agent and yield its response, all under ``timeout``; raise OSError.

    ``timeout`` bounds the whole exchange, not each read: at the deadline the
    socket is shut down, so an agent dripping a byte a second ends too.
    Redirects are never followed (http.client does not).
    """
    parts = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=tls_context(ca_file))
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    expired = threading.Event()

    def cut_off() -> None:
        expired.set()
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, cut_off)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(method, parts.path or "/", headers=headers)
        yield conn.getresponse()
        if expired.is_set():  # the socket was shut down under a read that then saw an end
            raise TimeoutError(f"no whole answer within {timeout:g} s")
    except ssl.SSLError as exc:
        raise _expired(expired, timeout) or OSError(f"TLS: {exc.reason or exc}") from None
    except http.client.HTTPException as exc:
        raise _expired(expired, timeout) or OSError(f"{type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise _expired(expired, timeout) or exc from None
    finally:
        watchdog.cancel()
        conn.close()


def _expired(expired: threading.Event, timeout: float) -> TimeoutError | None:
    return TimeoutError(f"no whole answer within {timeout:g} s") if expired.is_set() else None


def read_capped(response: http.client.HTTPResponse, sink: IO[bytes], cap: int) -> int:
    """Copy the answer's body to ``sink`` in chunks, never over ``cap`` bytes; return its size."""
    declared = response.getheader("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > cap:
        raise AnswerTooLarge(f"an answer of {int(declared)} bytes, over the cap of {cap}")
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise AnswerTooLarge(f"an answer over the cap of {cap} bytes")
        sink.write(chunk)
    if declared.strip().isdigit() and size < int(declared):
        raise OSError(f"an answer cut short: {size} of its {int(declared)} bytes")
    return size


def request(method: str, url: str, *, token: str | None, timeout: float,
            ca_file: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send one request to an agent; return (status, headers, body); raise OSError.

    The body is capped at :data:`MAX_TEXT_BYTES`: this is for short answers.
    """
    with exchange(method, url, token=token, timeout=timeout, ca_file=ca_file) as response:
        body = io.BytesIO()
        read_capped(response, body, MAX_TEXT_BYTES)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            body.getvalue()


def explain_status(status: int, body: bytes, headers: dict[str, str] | None = None) -> str:
    """Return why an agent's answer with ``status`` (not 200) gives no data, in a few words."""
    text = body[:4096].decode("utf-8", "replace").strip().splitlines()
    said = f" ({untrusted.shown(text[0], 200)})" if text else ""
    if status == 401:
        return (f"401: the agent wants a token{said}; set {protocol.CONTROL_TOKEN_VARIABLE} "
                "or --control-token-file")
    if status == 403:
        return f"403: the agent refused the token{said}"
    location = (headers or {}).get("location")
    if 300 <= status < 400 and location:
        return (f"answered {status}, a redirect to {untrusted.shown(location, 200)}: not "
                "followed (name the agent's own URL)")
    return f"answered {status}{said}"


def reason(exc: BaseException) -> str:
    """Return why a request failed, in a few words (``no answer in time``...)."""
    if isinstance(exc, TimeoutError):
        return str(exc) if str(exc).startswith("no whole") else "no answer in time"
    said = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return untrusted.shown(said)


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
          target: str, ca_file: str | None = None) -> AgentAnswer:
    """Ask one agent for its data (``/stop`` or ``/snapshot``); stream it to ``target``, check it.

    The whole exchange is under ``timeout`` and :data:`MAX_DATA_BYTES`; the
    file is checked (:func:`.untrusted.check_data_file`) before coverage reads it.
    """
    answer = AgentAnswer(url)
    started = time.monotonic()
    try:
        with exchange("POST", url + ("/stop" if stop else "/snapshot"), token=token,
                      timeout=timeout, ca_file=ca_file) as response:
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.status != 200:
                body = io.BytesIO()
                with contextlib.suppress(AnswerTooLarge):
                    read_capped(response, body, 4096)
                answer.error = explain_status(response.status, body.getvalue(), headers)
                return answer
            kind = headers.get("content-type", "")
            if kind.split(";")[0].strip() != protocol.AGENT_DATA_TYPE:
                answer.error = (f"answered {untrusted.shown(kind, 80) or 'no content type'}, "
                                f"not {protocol.AGENT_DATA_TYPE}: is it a servercov agent?")
                return answer
            answer.problem = headers.get(protocol.AGENT_PROBLEM_HEADER.lower())
            answer.warning = headers.get(protocol.AGENT_WARNING_HEADER.lower())
            with open(target, "wb") as sink:
                answer.size = read_capped(response, sink, MAX_DATA_BYTES)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(target)
        answer.error = f"cannot fetch its data: {reason(exc)}"
        return answer
    answer.seconds = time.monotonic() - started
    answer.error = _checked(target)
    if answer.error is None:
        answer.data_file = target
    return answer


def _checked(target: str) -> str | None:
    """Return why the fetched file at ``target`` is refused (it is removed), None if it is fine."""
    refusal = untrusted.check_data_file(target)
    if refusal is not None:
        os.unlink(target)
        return f"sent a data file that is refused: {refusal}"
    try:  # a whole, readable coverage data file, or nothing counted
        check = CoverageData(target)
        check.read()
        check.measured_files()
        check.close(force=True)
    except (CoverageException, OSError) as exc:
        os.unlink(target)
        return f"sent data that coverage cannot read: {untrusted.shown(str(exc))}"
    return None
