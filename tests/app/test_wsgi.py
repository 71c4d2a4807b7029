"""The control route's gate (absent without a token, 403 with a wrong one), and its stop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from nose2_servercov.app import servers
from nose2_servercov.app.servers.uwsgi import has_worker_handlers
from nose2_servercov.wsgi import ServercovMiddleware, wrap


def app(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"the app's own 404"]


def call(wsgi_app, path, token=None):
    seen = {}

    def start_response(status, headers):
        seen["status"] = status

    environ = {"PATH_INFO": path, "SCRIPT_NAME": "", "REQUEST_METHOD": "POST"}
    if token is not None:
        environ["HTTP_X_SERVERCOV_TOKEN"] = token
    body = b"".join(wsgi_app(environ, start_response))
    return seen["status"], body


def test_without_servercov_token_the_app_is_returned_unwrapped(monkeypatch):
    monkeypatch.delenv("SERVERCOV_TOKEN", raising=False)
    assert wrap(app) is app
    assert call(ServercovMiddleware(app, token=""), "/servercov/shutdown/")[0] == "404 Not Found"


def test_a_missing_or_wrong_token_is_forbidden(monkeypatch):
    monkeypatch.setenv("SERVERCOV_TOKEN", "s3cret")
    wrapped = wrap(app, shutdown_path="/0.0/shutdown/")
    assert call(wrapped, "/0.0/shutdown/")[0] == "403 Forbidden"
    assert call(wrapped, "/0.0/shutdown", token="s3cre")[0] == "403 Forbidden"
    assert call(wrapped, "/0.0/other/", token="s3cret") == ("404 Not Found", b"the app's own 404")


def test_the_stop_sees_the_server_even_after_the_environ_is_emptied(monkeypatch):
    """uWSGI clears the request's environ once the response is sent: the server is known before."""
    import threading

    stopped = threading.Event()
    seen = []

    def fake_stop(server):
        seen.append(server.name)
        stopped.set()

    for server in servers.SERVERS:  # none may really stop: a wrong one would TERM pytest
        monkeypatch.setattr(server, "stop", fake_stop)
    environ = {"PATH_INFO": "/servercov/shutdown/", "SCRIPT_NAME": "",
               "REQUEST_METHOD": "POST", "HTTP_X_SERVERCOV_TOKEN": "s3cret",
               "uwsgi.version": b"2.0.31"}
    body = ServercovMiddleware(app, token="s3cret")(environ, lambda status, headers: None)
    assert b"".join(body) == b'{"status": "stopping"}'
    environ.clear()  # what uWSGI does before the stop thread runs
    body.close()
    assert stopped.wait(5)
    assert seen == ["uwsgi"]


def test_a_uwsgi_worker_counts_as_booted_only_alive_and_catching_sigusr2():
    """What the shutdown route waits for: SIGUSR2 caught (a worker's handler), not a zombie."""
    catching = ("import signal, sys; signal.signal(signal.SIGUSR2, lambda *a: None); "
                "print(flush=True); sys.stdin.read()")
    plain = "import sys; print(flush=True); sys.stdin.read()"
    children = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE) for code in (catching, plain)]
    try:
        for child in children:
            child.stdout.readline()  # its handlers are in place
        assert has_worker_handlers(children[0].pid)
        assert not has_worker_handlers(children[1].pid)
    finally:
        for child in children:
            child.stdin.close()
    zombie = children[0]
    deadline = time.monotonic() + 30
    stat = Path(f"/proc/{zombie.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline  # it exits on its closed stdin; not reaped yet
        time.sleep(0.01)
    assert not has_worker_handlers(zombie.pid)
    for child in children:
        child.wait()
        child.stdout.close()
    assert not has_worker_handlers(zombie.pid)  # gone
