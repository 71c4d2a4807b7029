"""The agent (``servercov serve --control``) against clients that do not play fair.

A real serve of the basic scenario with its agent on loopback, started with a
low descriptor limit (RLIMIT_NOFILE 128) so that exhaustion is reachable:
hundreds of raw connections that send a partial request and then a byte now
and then (slowloris) must neither starve the legitimate collector nor keep
the stop from writing the data and the report; ``/stop`` racing with
snapshots and statuses answers every call.  Tokens too short for a network
and a token about to cross one in clear are refused.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nose2_servercov.engine.server import network
from tests.netns import make_cert
from tests.support import (
    assert_exact,
    assert_no_leftovers,
    end_process,
    make_project,
    plan,
    python_env,
    run_servercov,
    serve_state,
    servercov_command,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(300)

FD_LIMIT = 128  # the connection cap (64) binds first; at 80 the descriptor reserve does
TOKEN = "hostile-test-token-" + "y" * 16


@contextlib.contextmanager
def serve_with_agent(project: Path, port: int, *args: str,
                     fd_limit: int = FD_LIMIT) -> Iterator[subprocess.Popen[str]]:
    """Start ``servercov serve --control`` with few descriptors; no serve outlives the block."""

    def _low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    with open(project / "serve.log", "w") as log:
        serve = subprocess.Popen(
            servercov_command("serve", "--control", f"127.0.0.1:{port}", *args), cwd=project,
            env=python_env(SERVERCOV_CONTROL_TOKEN=TOKEN), stdout=log,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=_low_fd_limit)
    try:
        yield serve
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)


def control(method: str, port: int, path: str, timeout: float = 120,
            tls: ssl.SSLContext | None = None) -> int:
    """Send one control request with the token; return the status."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
            if tls else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def until_answered(method: str, port: int, path: str, within: float = 90,
                   tls: ssl.SSLContext | None = None) -> int:
    """Retry a control request refused for want of room (503, a reset) until answered."""
    deadline = time.monotonic() + within
    while True:
        try:
            status = control(method, port, path, timeout=30, tls=tls)
            if status != 503:
                return status
            why = "503"
        except OSError as exc:
            why = repr(exc)
        assert time.monotonic() < deadline, f"{method} {path} not answered in {within} s: {why}"
        time.sleep(0.2)


class Slowloris:
    """Raw connections sending a partial request, then one byte each every half second."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)

    def open(self, count: int) -> Slowloris:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /status HTTP/1.1\r\nHost: agent\r\n")
            self.sockets.append(sock)
        if not self.thread.is_alive():
            self.thread.start()
        return self

    def _drip(self) -> None:
        while not self.stopped.wait(0.5):
            for sock in list(self.sockets):
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_agent(port: int, serve: subprocess.Popen[str], project: Path,
                   tls: ssl.SSLContext | None = None) -> str:
    """Wait for the serve's state and its agent's /status; return the app's URL."""
    url = serve_state(project, serve)["url"]
    assert until_answered("GET", port, "/status", tls=tls) == 200
    return url


def drive_plan(project: Path, url: str) -> None:
    with requests.Session() as session:
        for method, path, body, status in plan(project):
            assert session.request(str(method), url + str(path), json=body,
                                   timeout=30).status_code == status


@pytest.mark.parametrize(("stop_by", "fd_limit"), [("/stop", FD_LIMIT), ("SIGTERM", 80)])
def test_slowloris_and_descriptor_exhaustion_leave_status_and_stop_working(tmp_path, stop_by,
                                                                            fd_limit):
    project = make_project(tmp_path)
    port = network.pick_free_port("127.0.0.1")
    attack = Slowloris(port)
    with serve_with_agent(project, port, fd_limit=fd_limit) as serve:
        url = wait_for_agent(port, serve, project)
        drive_plan(project, url)
        try:
            attack.open(300)  # far more than the serve's descriptors allow
            assert open_descriptors(serve.pid) < fd_limit - 16, "the reserve was eaten"
            assert until_answered("GET", port, "/status") == 200
            attack.open(150)  # the stop comes under attack too
            assert open_descriptors(serve.pid) < fd_limit - 16, "the reserve was eaten"
            if stop_by == "/stop":
                assert until_answered("POST", port, "/stop") == 200
            else:
                os.kill(serve.pid, signal.SIGTERM)
            assert end_process(serve, timeout=120) == 0, (project / "serve.log").read_text()
        finally:
            attack.close()
    log = (project / "serve.log").read_text()
    assert "connections refused at once" in log, log
    assert "Too many open files" not in log
    assert_exact(project, plan(project))
    assert (project / "htmlcov" / "index.html").exists()
    assert_no_leftovers(project)


def test_stop_racing_snapshots_and_statuses_answers_every_call(tmp_path):
    project = make_project(tmp_path)
    port = network.pick_free_port("127.0.0.1")
    calls = [("POST", "/snapshot")] * 30 + [("GET", "/status")] * 10 + [("POST", "/stop")] * 3
    answers: list[object] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def call(number: int) -> None:
        method, path = calls[number]
        barrier.wait(60)
        try:
            answers[number] = control(method, port, path)
        except OSError as exc:
            answers[number] = repr(exc)

    with serve_with_agent(project, port) as serve:
        url = wait_for_agent(port, serve, project)
        drive_plan(project, url)
        threads = [threading.Thread(target=call, args=(n,)) for n in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(200)
        assert end_process(serve, timeout=120) == 0, (project / "serve.log").read_text()
    unanswered = [(calls[n], a) for n, a in enumerate(answers) if a not in (200, 409, 503)]
    assert unanswered == []
    assert 200 in [a for (_, path), a in zip(calls, answers, strict=True) if path == "/stop"]
    assert_exact(project, plan(project))
    assert_no_leftovers(project)


def test_a_short_token_is_refused_off_loopback(tmp_path):
    project = make_project(tmp_path)
    refused = run_servercov(project, "serve", "--control", "0.0.0.0:18766",
                            "--control-insecure", SERVERCOV_CONTROL_TOKEN="short")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "servercov: error: --control 0.0.0.0:18766 is reachable from other hosts: the control "
        "token has 5 characters, expected at least 16 (e.g. python -c 'import secrets; "
        "print(secrets.token_urlsafe())'); refused"]
    assert not (project / ".servercov").exists()


def test_collect_sends_no_token_in_clear_to_another_host(tmp_path):
    project = make_project(tmp_path)
    agent = "http://10.231.254.2:8765"  # never contacted: the refusal comes first
    refused = run_servercov(project, "collect", agent, SERVERCOV_CONTROL_TOKEN=TOKEN)
    assert refused.returncode == 1
    assert servercov_lines(refused.stderr) == [
        f"servercov: error: {agent}: plain HTTP would send the control token in clear to "
        "another host: use https://, or --control-insecure on a private network; refused"]
    assert not list(project.glob(".coverage*"))


def test_collect_verifies_the_agent_with_control_ca(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command: cannot make the agent's certificate")
    project = make_project(tmp_path / "agent")
    checkout = make_project(tmp_path / "collector", servercov="reports = json\n")
    rcfile = checkout / ".apirc"
    rcfile.write_text(rcfile.read_text() + f"\n[paths]\nwebapp =\n    webapp/\n"
                                           f"    {project / 'webapp'}/\n")
    cert, key = make_cert(tmp_path, ["127.0.0.1"])
    port = network.pick_free_port("127.0.0.1")
    agent = f"https://127.0.0.1:{port}"
    tls = ssl.create_default_context(cafile=str(cert))
    with serve_with_agent(project, port, "--control-cert", str(cert), "--control-key",
                          str(key)) as serve:
        drive_plan(project, wait_for_agent(port, serve, project, tls=tls))
        unknown = run_servercov(checkout, "collect", agent, SERVERCOV_CONTROL_TOKEN=TOKEN)
        assert unknown.returncode == 1
        assert servercov_lines(unknown.stderr)[0] == (
            f"servercov: agent {agent}: cannot fetch its data: TLS: CERTIFICATE_VERIFY_FAILED")
        missing = run_servercov(checkout, "collect", "--control-ca", "missing.pem", agent,
                                SERVERCOV_CONTROL_TOKEN=TOKEN)
        assert servercov_lines(missing.stderr) == [
            "servercov: error: --control-ca missing.pem: cannot load it: No such file or "
            "directory"]
        stopped = run_servercov(checkout, "collect", "--stop", "--control-ca", str(cert), agent,
                                SERVERCOV_CONTROL_TOKEN=TOKEN)
        assert stopped.returncode == 0, stopped.stderr
        assert end_process(serve, timeout=120) == 0, (project / "serve.log").read_text()
    assert_exact(checkout, plan(checkout))
    assert_no_leftovers(project)


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as is (as much as the agent takes); return what it answers, if anything."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


def test_oversized_requests_are_refused_and_the_agent_answers_on(tmp_path):
    project = make_project(tmp_path)
    port = network.pick_free_port("127.0.0.1")
    with serve_with_agent(project, port) as serve:
        wait_for_agent(port, serve, project)
        long_line = raw_exchange(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n")
        assert long_line.startswith(b"HTTP/1.0 414 ")
        many_headers = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 1000) for n in range(300))
        headers = raw_exchange(port, b"GET /status HTTP/1.0\r\n" + many_headers + b"\r\n")
        assert not headers.startswith(b"HTTP/1.0 200 ")  # cut off past its byte budget
        body = raw_exchange(port, b"POST /snapshot HTTP/1.0\r\nContent-Length: 1000000000\r\n"
                                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        assert body.startswith(b"HTTP/1.0 413 ")
        bad_length = raw_exchange(port, b"POST /snapshot HTTP/1.0\r\nContent-Length: -1\r\n\r\n")
        assert bad_length.startswith(b"HTTP/1.0 413 ")
        assert control("GET", port, "/status") == 200
        assert control("POST", port, "/stop") == 200
        assert end_process(serve, timeout=120) == 0, (project / "serve.log").read_text()
    assert_no_leftovers(project)
