"""The first hour (issue 24): a newcomer's mistakes each get the line that fixes it.

Real servers in real projects written here: a Flask app that ignores
``{port}``, apps of each framework that forgot servercov's shutdown route,
two rcfiles in one folder with one serve, and ``pytest --servercov -v``
three times in a row.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nose2_servercov.engine.server.route_advice import shutdown_route_helper
from nose2_servercov.engine.server.wrongport import WrongPortWatch
from nose2_servercov.errors import ServerStartError
from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    make_project,
    python_env,
    run_servercov,
    running_serve,
    serve_state,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(240)

RCFILE = """\
[run]
parallel = True
source = {source}

[servercov]
command = {command}
shutdown_path = /servercov/shutdown/
{extra}"""

FLASK_APP = """\
import sys

from flask import Flask

app = Flask(__name__)
{helper}

@app.get("/talk/")
def talk():
    print("first line from the server", flush=True)
    print("second line from the server", flush=True)
    return "said"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port={port}, use_reloader=False)
"""

FASTAPI_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/health/")
def health():
    return {"status": "ok"}
"""

WSGI_APP = """\
import sys
from wsgiref.simple_server import make_server


def app(environ, start_response):
    found = environ["PATH_INFO"] == "/health/"
    start_response("200 OK" if found else "404 Not Found", [("Content-Type", "text/plain")])
    return [b"ok" if found else b"no such page"]


make_server("127.0.0.1", int(sys.argv[1]), app).serve_forever()
"""

DJANGO_FILES = {
    "manage.py": """\
import os
import sys

from django.core.management import execute_from_command_line

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
execute_from_command_line(sys.argv)
""",
    "site_settings.py": """\
SECRET_KEY = "a test, not a secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "site_urls"
INSTALLED_APPS = []
DATABASES = {}
MIDDLEWARE = []  # servercov's middleware forgotten
USE_TZ = True
""",
    "site_urls.py": """\
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("health/", lambda request: HttpResponse("ok"))]
""",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(folder: Path, files: dict[str, str], *, source: str, command: str,
                  extra: str = "") -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / ".apirc").write_text(RCFILE.format(source=source, command=command, extra=extra))
    return folder


def flask_project(folder: Path, *, helper: bool, port: str = "int(sys.argv[1])",
                  command: str = "{python} app.py {port}", extra: str = "") -> Path:
    init = "from nose2_servercov.flask import init_app\ninit_app(app)" if helper else ""
    return write_project(folder, {"app.py": FLASK_APP.format(helper=init, port=port)},
                         source="app", command=command, extra=extra)


def test_a_server_on_another_port_fails_the_start_in_seconds_naming_both_ports(tmp_path):
    theirs, ours = free_port(), free_port()
    project = flask_project(tmp_path / "wrong-port", helper=True, port=str(theirs),
                            command="{python} app.py", extra=f"port = {ours}\n")
    run = run_servercov(project, "run", "--", sys.executable, "-c", "pass")
    errors = [line for line in servercov_lines(run.stderr) if "error" in line]
    assert errors == [
        f"servercov: error: the server listens on port {theirs}, not on port {ours} that "
        f"servercov gave it: put {{port}} in [servercov] command ({project / '.apirc'}); its "
        "last output lines:"], run.stderr
    assert f"Running on http://127.0.0.1:{theirs}" in run.stderr  # the server's own word
    assert run.returncode == 1
    assert "not ready after" not in run.stderr  # told by the port watch, not startup_timeout
    assert_no_leftovers(project)


def test_the_port_watch_names_a_foreign_listener_only_after_its_grace(tmp_path):
    ours = free_port()
    watch = WrongPortWatch(ours, rcfile=tmp_path / ".apirc", tail=lambda: "    | tail",
                           grace=0.3, every=0.0)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        members = lambda: [os.getpid()]  # noqa: E731 (this process holds the listener)
        watch.check(members)  # the grace begins
        time.sleep(0.35)
        with pytest.raises(ServerStartError) as raised:
            watch.check(members)
        assert str(raised.value) == (
            f"the server listens on port {port}, not on port {ours} that servercov gave it: "
            f"put {{port}} in [servercov] command ({tmp_path / '.apirc'}); its last output "
            "lines:\n    | tail")
        with socket.socket() as ours_too:  # once ours listens too, it is never wrong
            ours_too.bind(("127.0.0.1", ours))
            ours_too.listen()
            time.sleep(0.35)
            watch.check(members)


@pytest.mark.parametrize(("command", "files", "helper"), [
    (["python", "-m", "flask", "run"], {}, "nose2_servercov.flask"),
    (["python", "app.py"], {"app.py": "from flask import Flask\n"}, "nose2_servercov.flask"),
    (["gunicorn", "app:app"], {"app.py": "import flask\n"}, "nose2_servercov.flask"),
    (["gunicorn", "-k", "uvicorn.workers.UvicornWorker", "main:app"], {}, "asgi.init_app"),
    (["python", "-m", "uvicorn", "main:app"], {}, "nose2_servercov.asgi.init_app"),
    (["gunicorn", "mysite.wsgi"], {"mysite/wsgi.py": "from django.core.wsgi import x\n"},
     "ServercovMiddleware in MIDDLEWARE"),
    (["python", "manage.py", "runserver"], {}, "ServercovMiddleware in MIDDLEWARE"),
    (["gunicorn", "app:app"], {"app.py": "def app(environ, start_response): ...\n"},
     "nose2_servercov.wsgi.wrap(app)"),
])
def test_the_framework_is_told_from_the_command_and_the_files_it_names(tmp_path, command,
                                                                       files, helper):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    advice = shutdown_route_helper(command, tmp_path)
    assert helper in advice and "(Flask)" not in advice, advice


def test_the_start_line_names_the_rcfile(tmp_path):
    project = flask_project(tmp_path / "flask", helper=True)
    run = run_servercov(project, "run", "--", sys.executable, "-c", "pass")
    assert run.returncode == 0, run.stderr
    [start] = [line for line in servercov_lines(run.stderr) if "server started" in line]
    assert re.fullmatch(r"servercov: server started: pid \d+, http://127\.0\.0\.1:\d+, ready in "
                        rf"[\d.]+ s, core \w+.*, rcfile {re.escape(str(project / '.apirc'))}",
                        start), start


HELPERS = {
    "flask": "add it with init_app(app) from nose2_servercov.flask",
    "fastapi": "add it with nose2_servercov.asgi.init_app(app)",
    "django": "add it with the middleware nose2_servercov.django.ServercovMiddleware in "
              "MIDDLEWARE",
    "wsgi": "add it with nose2_servercov.wsgi.wrap(app)",
}


def forgetful_project(folder: Path, framework: str) -> Path:
    """A project whose app never got servercov's shutdown route."""
    if framework == "flask":
        return flask_project(folder, helper=False)
    if framework == "fastapi":
        return write_project(folder, {"main.py": FASTAPI_APP}, source="main",
                             command="{python} -m uvicorn main:app --host {host} --port {port}")
    if framework == "django":
        return write_project(folder, DJANGO_FILES, source="site_urls",
                             command="{python} manage.py runserver {host}:{port} --noreload")
    return write_project(folder, {"plain.py": WSGI_APP}, source="plain",
                         command="{python} plain.py {port}")


@pytest.mark.parametrize("framework", HELPERS)
def test_a_404_from_the_shutdown_path_names_the_helper_of_the_framework(tmp_path, framework):
    project = forgetful_project(tmp_path / framework, framework)
    run = run_servercov(project, "run", "--", sys.executable, "-c", "pass")
    lines = servercov_lines(run.stderr)
    assert ("servercov:   shutdown_path: /servercov/shutdown/ answered 404: is servercov's "
            f"route missing? {HELPERS[framework]}") in lines, run.stderr
    # The run still ends as before: stopped by the signal, the data kept, exit 0.
    assert "servercov: server stopped by SIGTERM" in " ".join(lines), run.stderr
    assert run.returncode == 0, run.stderr
    assert (project / ".coverage").exists()
    assert_no_leftovers(project)


def test_an_unknown_framework_gets_every_helper_named(tmp_path):
    server = textwrap.dedent("""\
        import http.server
        import sys


        class NotFound(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_error(404)

            do_POST = do_GET


        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), NotFound).serve_forever()
        """)
    project = write_project(tmp_path / "other", {"srv.py": server}, source="srv",
                            command="{python} srv.py {port}")
    run = run_servercov(project, "run", "--", sys.executable, "-c", "pass")
    assert run.returncode == 0, run.stderr
    assert [line for line in servercov_lines(run.stderr) if "answered" in line] == [
        "servercov:   shutdown_path: /servercov/shutdown/ answered 404: is servercov's route "
        "missing? add it with init_app(app) from nose2_servercov.flask (Flask), "
        "nose2_servercov.asgi.init_app(app) (FastAPI, Starlette), the middleware "
        "nose2_servercov.django.ServercovMiddleware in MIDDLEWARE (Django), "
        "nose2_servercov.wsgi.wrap(app) (other WSGI apps)"], run.stderr


def test_snapshot_and_stop_name_the_serve_of_another_rcfile_and_stop_prints_the_total(tmp_path):
    project = make_project(tmp_path)
    (project / "other.apirc").write_text((project / ".apirc").read_text())
    with running_serve(project, "--rcfile", "other.apirc") as serve:
        state = serve_state(project, serve)
        for command in ("snapshot", "stop"):
            refused = run_servercov(project, command)
            assert refused.returncode == 1
            assert refused.stderr.splitlines() == [
                f"servercov: error: the servercov serve running in {project} (pid "
                f"{state['serve_pid']}) is for {project / 'other.apirc'}, not for "
                f"{project / '.apirc'}: nothing was signalled; to reach it, pass its rcfile: "
                f"servercov {command} --rcfile other.apirc"], refused.stderr
        second = run_servercov(project, "serve")
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"servercov: error: the servercov serve running in {project} (pid "
            f"{state['serve_pid']}) is for {project / 'other.apirc'}, not for "
            f"{project / '.apirc'}: nothing was signalled; to reach it, pass its rcfile: "
            "servercov stop --rcfile other.apirc (one serve per folder: stop it first)"]
        assert serve.poll() is None, "the other rcfile's serve was stopped"
        assert (project / ".servercov" / "serve.json").exists()
        stopped = run_servercov(project, "stop", "--rcfile", "other.apirc")
        assert stopped.returncode == 0, stopped.stderr
        assert serve.wait(RUN_TIMEOUT) == 0
    total = json.loads((project / "coverage.json").read_text())["totals"]["percent_covered"]
    serve_lines = servercov_lines((project / "serve.log").read_text())
    places = [line for line in serve_lines if re.match(r"servercov: \w+ report: ", line)]
    assert places, serve_lines
    assert stopped.stderr.splitlines() == [
        f"servercov: the serve (pid {state['serve_pid']}) stopped and wrote its final reports",
        f"servercov: total coverage {total:.2f}%", *places]
    assert not (project / ".servercov").exists()
    assert_no_leftovers(project)


def test_pytest_v_shows_the_servers_lines_of_a_passing_test_every_time(tmp_path):
    project = flask_project(tmp_path / "talk", helper=True)
    (project / "test_talk.py").write_text(textwrap.dedent("""\
        import requests


        def test_the_server_talks(servercov_url):
            assert requests.get(servercov_url + "/talk/", timeout=10).text == "said"
        """))
    for attempt in range(3):
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                              "--servercov", "-v", "test_talk.py"], cwd=project,
                             env=python_env(), capture_output=True, text=True,
                             timeout=RUN_TIMEOUT)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "1 passed" in run.stdout
        shown = run.stdout + run.stderr
        assert "server: first line from the server" in shown, f"run {attempt + 1}:\n{shown}"
        assert "server: second line from the server" in shown, f"run {attempt + 1}:\n{shown}"
    assert_no_leftovers(project)
