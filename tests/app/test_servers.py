"""Each stopping class recognises its own server, from inside a real server process.

Every server below serves a small app that answers the name of the class
:func:`~nose2_servercov.app.servers.find_server` picks, from the request's
real environ (WSGI, Django's ``request.META``) or the process alone (ASGI).
How each class then stops its server is proven end to end by
tests/acceptance/test_servers.py and test_frameworks.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nose2_servercov.app.servers import SERVERS
from nose2_servercov.app.servers.main_thread import MainThreadServer
from nose2_servercov.engine.server.network import pick_free_port
from tests.support import python_env

BIN = Path(sys.executable).parent  # the console scripts (uwsgi) beside python
APP = '''
from nose2_servercov.app.servers import find_server


def app(environ, start_response):
    name = find_server(environ).name.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(name)))])
    return [name]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    name = find_server({}).name.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": name})
'''
MANAGE = '''
import sys

from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from nose2_servercov.app.servers import find_server


def which(request):
    return HttpResponse(find_server(request.META).name)


urlpatterns = [path("", which)]
settings.configure(ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__, SECRET_KEY="test")

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
'''
PYTHON = sys.executable
SERVERS_RUN = {  # what the process is served by: (command, the class's name)
    "werkzeug": ([PYTHON, "-c", "import sys, app, werkzeug.serving; werkzeug.serving."
                  "run_simple('127.0.0.1', int(sys.argv[1]), app.app)", "{port}"],
                 "werkzeug"),
    "gunicorn": ([PYTHON, "-m", "gunicorn", "-b", "127.0.0.1:{port}", "app:app"], "gunicorn"),
    "gunicorn-uvicorn-worker": ([PYTHON, "-m", "gunicorn", "-b", "127.0.0.1:{port}", "-k",
                                 "uvicorn.workers.UvicornWorker", "app:asgi_app"], "gunicorn"),
    "uwsgi": ([str(BIN / "uwsgi"), "--master", "--http-socket", "127.0.0.1:{port}",
               "--module", "app:app", "--processes", "1"], "uwsgi"),
    "waitress": ([PYTHON, "-m", "waitress", "--listen=127.0.0.1:{port}", "app:app"],
                 "waitress"),
    "uvicorn": ([PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
                 "app:asgi_app"], "uvicorn"),
    "hypercorn": ([PYTHON, "-m", "hypercorn", "--bind", "127.0.0.1:{port}", "app:asgi_app"],
                  "hypercorn"),
    "django-runserver-noreload": ([PYTHON, "manage.py", "runserver", "127.0.0.1:{port}",
                                   "--noreload"], "django-runserver"),
    "django-runserver-reloader": ([PYTHON, "manage.py", "runserver", "127.0.0.1:{port}"],
                                  "django-runserver"),
    "wsgiref": ([PYTHON, "-c", "import sys, app, wsgiref.simple_server as s; s.make_server("
                 "'127.0.0.1', int(sys.argv[1]), app.app).serve_forever()", "{port}"], "other"),
}


def ask_which_server(url: str, server: subprocess.Popen[str], timeout: float = 60) -> str:
    """Return the app's answer at ``url`` once the server answers, under a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.communicate(timeout=10)[0] if server.poll() is not None else ""
                raise AssertionError(f"the server did not answer at {url}\n{output}") from None
            time.sleep(0.1)


@pytest.mark.parametrize("served_by", SERVERS_RUN)
def test_each_server_is_recognised_from_inside_its_process(tmp_path, served_by):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "manage.py").write_text(MANAGE)
    command, expected = SERVERS_RUN[served_by]
    port = pick_free_port("127.0.0.1")
    server = subprocess.Popen([word.format(port=port) for word in command], cwd=tmp_path,
                              env=python_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert ask_which_server(f"http://127.0.0.1:{port}/", server) == expected
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate(timeout=30)


def test_every_server_class_has_its_real_server_above():
    assert {server.name for server in SERVERS} == {name for _, name in SERVERS_RUN.values()}


def test_the_fallback_is_asked_last_and_takes_any_process():
    assert SERVERS[-1] is MainThreadServer
    assert MainThreadServer.recognises({})
    # In a fresh interpreter: this one may have imported uvicorn or hypercorn.
    environs = [{"SERVER_SOFTWARE": "SomeNewServer/1.0"}, {"SERVER_SOFTWARE": "Werkzeug/3.1.3"},
                {"SERVER_SOFTWARE": "waitress"}, {"SERVER_SOFTWARE": "gunicorn/23.0.0"},
                {"uwsgi.version": b"2.0.31"}]
    code = ("from nose2_servercov.app.servers import find_server; "
            f"print(*(find_server(environ).name for environ in {environs!r}))")
    names = subprocess.run([PYTHON, "-c", code], env=python_env(), capture_output=True,
                           text=True, timeout=60, check=True).stdout.split()
    assert names == ["other", "werkzeug", "waitress", "gunicorn", "uwsgi"]
