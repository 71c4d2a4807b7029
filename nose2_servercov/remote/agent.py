"""The agent of ``servercov serve --control``: a small HTTP listener in the serve process.

It runs in a thread of the serve process, never in the app, and answers:

- ``GET /status``: JSON ``url``, ``processes``, ``started``, ``version``, ``state``;
- ``POST /snapshot``: a coverage data file (SQLite) of everything every server
  process has executed so far, made the way ``servercov snapshot`` makes it
  (each process writes a dump, copies are combined);
- ``POST /stop``: the orderly stop of ``serve`` (as SIGTERM), answered with
  the final combined data once the serve has written its reports.

Every request needs ``Authorization: Bearer <token>``, compared in constant
time: 401 without it, 403 when wrong.  Where the agent may listen:

- loopback without a token: allowed (a warning says any local user can use it);
- any other address without a token: refused before anything starts;
- any other address with a token over plain HTTP: refused unless
  ``--control-insecure`` says the network is private (a compose network, a
  pod), since the token would cross the network in clear text;
- HTTPS with ``--control-cert`` and ``--control-key``: allowed everywhere;
- a token shorter than :data:`MIN_TOKEN` characters: refused for any address
  but loopback (a short secret is guessed by anyone who can connect).

The listener is :mod:`.listener`'s, hardened against every client: bounded
connections, time, bytes and descriptors (why the standard library's server
and not an HTTP library is said there).
"""

from __future__ import annotations

import contextlib
import datetime
import hmac
import http.server
import io
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nose2_servercov import procfs, protocol
from nose2_servercov.engine import data
from nose2_servercov.engine.data import snapshot
from nose2_servercov.engine.servestate import exclusive
from nose2_servercov.errors import ServeError
from nose2_servercov.remote import listener

# How long a /stop answer waits for the serve to stop, combine and report.
FINAL_TIMEOUT_STEPS = 3
# The shortest token accepted where other hosts can connect.
MIN_TOKEN = 16


def _say(message: str) -> None:
    sys.stderr.write(f"servercov: control: {message}\n")
    sys.stderr.flush()


def read_token(token_file: str | None) -> str | None:
    """Return the control token: the file's if one is named, else ``SERVERCOV_CONTROL_TOKEN``."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServeError(f"{token_file}: cannot read the control token: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        if not token:
            raise ServeError(f"{token_file}: the control token file is empty")
        return token
    return os.environ.get(protocol.CONTROL_TOKEN_VARIABLE, "").strip() or None


def parse_address(text: str) -> tuple[str, int]:
    """Return (host, port) of ``HOST:PORT`` or ``[IPV6]:PORT``."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ServeError(f"--control {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8765 or "
                         "0.0.0.0:8765")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ControlOptions:
    """What ``servercov serve --control ...`` was asked for."""

    address: str
    token_file: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


class ControlAgent:
    """The control listener: bound before the server starts, serving once it is ready."""

    def __init__(self, options: ControlOptions, *, version: str) -> None:
        self.host, self.port = parse_address(options.address)
        self.token = read_token(options.token_file)
        self.version = version
        loopback = is_loopback(self.host)
        if (options.cert is None) != (options.key is None):
            raise ServeError("--control-cert and --control-key go together (the certificate "
                             "and its private key, PEM files)")
        self.tls: ssl.SSLContext | None = None
        if options.cert and options.key:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                self.tls.load_cert_chain(options.cert, options.key)
            except (OSError, ssl.SSLError) as exc:
                raise ServeError(f"--control-cert {options.cert} / --control-key "
                                 f"{options.key}: cannot load them: {exc}") from None
        if not loopback and self.token is None:
            raise ServeError(f"--control {options.address} is reachable from other hosts: it "
                             f"needs a token ({protocol.CONTROL_TOKEN_VARIABLE} or "
                             "--control-token-file); refused")
        if not loopback and self.token is not None and len(self.token) < MIN_TOKEN:
            raise ServeError(f"--control {options.address} is reachable from other hosts: the "
                             f"control token has {len(self.token)} characters, expected at "
                             f"least {MIN_TOKEN} (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe())'); refused")
        if not loopback and self.tls is None and not options.insecure:
            raise ServeError(f"--control {options.address} is reachable from other hosts and "
                             "plain HTTP would send the token in clear: give --control-cert "
                             "and --control-key, or --control-insecure on a private network; "
                             "refused")
        self.scheme = "https" if self.tls else "http"
        self.stop_requested = threading.Event()
        self.final_ready = threading.Event()
        self.final_body: bytes | None = None
        self.final_error: str | None = None
        self.final_problem: str | None = None
        self.snapshot_lock = threading.Lock()
        self.session: Any = None
        self.state_path: Path | None = None
        self.started = ""
        self.server = self._bind()
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the agent's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _bind(self) -> _ControlServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        _ControlServer.address_family = family
        try:
            server = _ControlServer((self.host, self.port), _ControlHandler, _say)
        except OSError as exc:
            raise ServeError(f"--control {self.host}:{self.port}: cannot listen there: "
                             f"{exc.strerror or exc}") from None
        server.agent = self
        if self.tls is not None:
            # The handshake happens in the request's thread, at its first read.
            server.socket = self.tls.wrap_socket(server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        return server

    def start(self, session: Any, state_path: Path) -> None:
        """Answer requests about ``session`` (the started run of the serve's server) from now on."""
        self.session = session
        self.state_path = state_path
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.1}, name="servercov-control", daemon=True)
        self.thread.start()
        if self.token is None:
            _say(f"listening on {self.url} without a token: any local user can snapshot and "
                 f"stop this server (set {protocol.CONTROL_TOKEN_VARIABLE} to require one)")
        else:
            _say(f"listening on {self.url} (token required)")

    def status(self) -> dict[str, Any]:
        """Return what ``GET /status`` answers."""
        session = self.session
        pids = procfs.group_members(session.process.pid) if session.process is not None else []
        return {"url": session.url, "processes": len(pids), "started": self.started,
                "version": self.version,
                "state": "stopping" if self.stop_requested.is_set() else "serving"}

    def snapshot(self) -> tuple[bytes, list[int], list[int]]:
        """Return a data file of all the server has executed so far, and who answered."""
        session = self.session
        settings = session.settings
        assert self.state_path is not None
        with self.snapshot_lock, exclusive(self.state_path):
            if self.stop_requested.is_set():
                raise ServeError("the server is stopping")
            answers = snapshot.dump_all(settings, session.measured_groups(),
                                        timeout=session.config.shutdown_timeout)
            live, silent = answers.answered, sorted(answers.unregistered)
            files = snapshot.snapshot_files(settings, live)
            return data.combined_copies(settings, files), live, silent

    def request_stop(self) -> None:
        """Begin the serve's orderly stop, as SIGTERM does (once)."""
        if not self.stop_requested.is_set():
            self.stop_requested.set()
            os.kill(os.getpid(), signal.SIGTERM)

    def wait_final(self) -> tuple[bytes | None, str | None, str | None]:
        """Wait for the serve's final data; return (data, error, problem)."""
        timeout = FINAL_TIMEOUT_STEPS * self.session.config.shutdown_timeout + 60
        if not self.final_ready.wait(timeout):
            return None, f"the serve did not finish its final report within {timeout:g} s", None
        return self.final_body, self.final_error, self.final_problem

    def close(self, *, status: int | None = None, error: str | None = None) -> None:
        """Hand the final data (or why there is none) to /stop, answer it, stop listening.

        ``status`` is the serve's exit status once it has written its final
        reports (0, or 2 for fail_under, are no problem of the data).
        """
        problem = None
        if error is None and self.session is None:
            error = "the server never started"
        if error is None:
            data_file = self.session.settings.data_file
            try:
                self.final_body = Path(data_file).read_bytes()
            except OSError as exc:
                error = f"cannot read the final data file {data_file}: {exc.strerror or exc}"
            if status not in (0, 2):
                problem = (f"the serve ended with exit status {status} after its final report: "
                           "see its output")
        self.final_error, self.final_problem = error, problem
        self.final_ready.set()
        # The /stop answers in flight finish; what is queued is answered 503.
        self.server.stop_serving()


class _ControlServer(listener.HardenedServer):
    agent: ControlAgent


class _ControlHandler(http.server.BaseHTTPRequestHandler):
    server: _ControlServer
    timeout = listener.REQUEST_DEADLINE
    server_version = "servercov-control"

    def setup(self) -> None:
        """Read the request under its deadline and byte budget, not a per-read timeout."""
        super().setup()
        accepted = time.monotonic()
        self.rfile.close()
        self.rfile = io.BufferedReader(listener.DeadlineReader(
            self.connection, lambda: self.server.request_deadline(accepted)))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # each answer that matters gets its own servercov: line

    def log_error(self, format: str, *args: Any) -> None:
        """Count a request cut off or refused by http.server (timed out, malformed, too long)."""
        self.server.note_cut_off()

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.connection.settimeout(listener.WRITE_TIMEOUT)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", headers)

    def _authorized(self) -> bool:
        token = self.server.agent.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            self._send_text(401, "a control token is needed: Authorization: Bearer <token>",
                            {"WWW-Authenticate": 'Bearer realm="servercov"'})
            return False
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            _say(f"refused a request from {self.client_address[0]}: wrong token")
            self._send_text(403, "wrong control token")
            return False
        return True

    def _route(self, method: str) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            # A client that fails the TLS handshake or hangs up is not an error of the serve.
            if self.server.closing:
                self._send_text(503, "the agent has stopped")
                return
            length_text = (self.headers.get("Content-Length") or "0").strip()
            if not length_text.isdigit() or int(length_text) > listener.MAX_BODY:
                self._send_text(413, f"a body of at most {listener.MAX_BODY} bytes (control "
                                     "requests need none)")
                return
            if int(length_text):
                self.rfile.read(int(length_text))
            if not self._authorized():
                return
            routes = {"/status": "GET", "/snapshot": "POST", "/stop": "POST"}
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path not in routes:
                self._send_text(404, f"no such control route: {path} (there are "
                                     f"{', '.join(routes)})")
            elif routes[path] != method:
                self._send_text(405, f"{path} takes {routes[path]}", {"Allow": routes[path]})
            elif path == "/status":
                self._send(200, json.dumps(self.server.agent.status()).encode(),
                           "application/json")
            elif path == "/snapshot":
                self._snapshot()
            else:
                self._stop()

    def _snapshot(self) -> None:
        agent = self.server.agent
        if agent.stop_requested.is_set():
            self._send_text(409, "the server is stopping: POST /stop for its final data")
            return
        started = time.monotonic()
        try:
            body, live, silent = agent.snapshot()
        except Exception as exc:  # a failed snapshot must not take the serve down
            if agent.stop_requested.is_set():  # the stop took the processes it asked
                self._send_text(409, "the server is stopping: POST /stop for its final data")
                return
            _say(f"snapshot for {self.client_address[0]} failed: {exc}")
            self._send_text(500, f"snapshot failed: {exc}")
            return
        headers = {}
        if silent:
            # Processes that cannot answer are named, as `servercov snapshot` does.
            headers[protocol.AGENT_WARNING_HEADER] = (
                f"server processes {silent} do not answer snapshots; what they ran is missing")
        _say(f"snapshot for {self.client_address[0]}: {len(live)} live server processes, "
             f"{len(body)} bytes, {time.monotonic() - started:.2f} s")
        self._send(200, body, protocol.AGENT_DATA_TYPE, headers)

    def _stop(self) -> None:
        agent = self.server.agent
        _say(f"stop requested by {self.client_address[0]}")
        agent.request_stop()
        body, error, problem = agent.wait_final()
        if body is None:
            self._send_text(500, f"the stop failed: {error}")
            return
        # Final data the serve itself calls untrustworthy: the collector fails.
        headers = {protocol.AGENT_PROBLEM_HEADER: problem} if problem else None
        self._send(200, body, protocol.AGENT_DATA_TYPE, headers)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")
