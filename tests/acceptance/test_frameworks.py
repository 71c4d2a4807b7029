"""FastAPI (uvicorn, hypercorn, gunicorn's uvicorn worker), Django, gevent, eventlet, wsgiref.

Each setup runs a scenario for real: ``nose2 --with-servercov`` starts the
server, the servers scenario's test_load.py sends the mixed plan from 8 threads
(and, with two workers, test_workers.py asks one route of each worker over
kept-alive connections); then this side compares the combined data, line for
line and arc for arc, with the same requests replayed in-process through the
framework's own test client under coverage (Starlette's TestClient,
django.test.Client, Flask's test_client: the scenario's replay.py), checks how
the server stopped, that no process is left and that no per-process data file
stays behind.

What every row of issue 9's table measures is printed with ``-s``, or appended
as JSON lines to $FRAMEWORKS_TABLE.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.support import (
    RUN_TIMEOUT,
    SCENARIOS,
    assert_no_leftovers,
    make_project,
    plan,
    python_env,
    run_nose2,
    stray_data_files,
)

pytestmark = pytest.mark.timeout(240)

BIN = Path(sys.executable).parent
HOST_PORT = "--host {host} --port {port}"
ONCE = ["/once/a/", "/once/b/", "/once/c/", "/once/d/"]
WORKER_ROUTES = ["/worker/first/", "/worker/second/"]
REPETITIONS = "24"

# The servers scenario (Flask) under a single-threaded wsgiref server, through wsgi.wrap.
WSGIREF_APP = '''
import sys
from wsgiref.simple_server import make_server

from webapp import create_app

server = make_server("127.0.0.1", int(sys.argv[1]), create_app())
server.serve_forever()
'''
# Flask apps monkey-patched by gevent or eventlet: nothing in the command says so.
PATCHED_APPS = {
    "gevent": '''
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from webapp import create_app  # noqa: E402

WSGIServer(("127.0.0.1", int(sys.argv[1])), create_app()).serve_forever()
''',
    "eventlet": '''
import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

import eventlet.wsgi  # noqa: E402

from webapp import create_app  # noqa: E402

eventlet.wsgi.server(eventlet.listen(("127.0.0.1", int(sys.argv[1]))), create_app())
''',
}


@dataclass(frozen=True)
class Setup:
    """One way of serving one scenario."""

    scenario: str  # fastapi, django or servers (Flask)
    command: str
    workers: str  # processes that must answer; "N+" at least N (recycled workers)
    stop_signal: str = "TERM"
    route: bool = True
    servercov: str = ""  # more [servercov] lines
    launcher: tuple[str, str] | None = None  # (file name, text) written into the project
    resets_ok: bool = False  # a recycled worker may reset connections (the load retries)

    def section(self) -> str:
        lines = [f"command = {self.command}", "ready_path = /health/",
                 f"stop_signal = {self.stop_signal}", "shutdown_timeout = 10",
                 "log = server.log", "reports = term"]
        if self.route:
            lines.append("shutdown_path = /servercov/shutdown/")
        return "\n".join(lines) + "\n" + textwrap.dedent(self.servercov)


UVICORN = "{python} -m uvicorn app:app " + HOST_PORT
HYPERCORN = "{python} -m hypercorn --bind {host}:{port} app:app"
GUNICORN = "{python} -m gunicorn --bind {host}:{port}"
UWSGI = ("uwsgi --master --http {host}:{port} --module app:app --processes 2 "
         "--master-fifo uwsgi.fifo")

SETUPS = {
    # FastAPI / ASGI
    "uvicorn": Setup("fastapi", UVICORN, "1"),
    "uvicorn-workers-2": Setup("fastapi", UVICORN + " --workers 2", "2"),
    "uvicorn-reload": Setup("fastapi", UVICORN + " --reload", "1"),
    "uvicorn-signal": Setup("fastapi", UVICORN + " --workers 2", "2", route=False),
    "uvicorn-root-path": Setup("fastapi", UVICORN + " --root-path /api", "1"),
    "uvicorn-limit-max-requests": Setup(
        "fastapi", UVICORN + " --workers 2 --limit-max-requests 100", "3+", resets_ok=True),
    "hypercorn": Setup("fastapi", HYPERCORN, "1"),
    "hypercorn-signal": Setup("fastapi", HYPERCORN, "1", route=False),
    "hypercorn-workers-2": Setup("fastapi", HYPERCORN + " --workers 2", "2"),
    "hypercorn-workers-2-signal": Setup("fastapi", HYPERCORN + " --workers 2", "2",
                                        route=False),
    "gunicorn-uvicorn-worker": Setup(
        "fastapi", GUNICORN + " --workers 2 --worker-class uvicorn.workers.UvicornWorker "
        "app:app", "2"),
    # Django
    "django-runserver-reloader": Setup("django", "{python} manage.py runserver {host}:{port}",
                                       "1"),
    "django-runserver-noreload": Setup(
        "django", "{python} manage.py runserver {host}:{port} --noreload", "1"),
    "django-runserver-noreload-signal": Setup(
        "django", "{python} manage.py runserver {host}:{port} --noreload", "1", route=False),
    "django-gunicorn": Setup("django", GUNICORN + " --workers 2 django_wsgi:application", "2"),
    "django-uvicorn": Setup("django", "{python} -m uvicorn django_asgi:application "
                            + HOST_PORT, "1"),
    # gevent / eventlet (Flask): nothing about concurrency in the rcfile
    "gunicorn-gevent": Setup("servers", GUNICORN + " -k gevent --workers 2 app:app", "2"),
    # worker recycling, prefix mounts, a single-threaded server (Flask)
    "gunicorn-max-requests": Setup("servers", GUNICORN + " --workers 2 --max-requests 40 "
                                   "app:app", "3+"),
    # uWSGI recycles a worker only once it has lived min-worker-lifetime (10 s by default).
    "uwsgi-max-requests": Setup("servers", UWSGI + " --max-requests 40 --min-worker-lifetime 1",
                                "3+",
                                stop_signal="INT"),
    "gunicorn-script-name": Setup(
        "servers", GUNICORN + " --workers 2 --env SCRIPT_NAME=/api app:app", "2",
        servercov="url = http://{host}:{port}/api\n"),
    "wsgiref": Setup("servers", "{python} wsgiref_app.py {port}", "1",
                     launcher=("wsgiref_app.py", WSGIREF_APP)),
}


def server_path() -> str:
    return f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def make_setup_project(tmp_path: Path, setup: Setup) -> Path:
    project = make_project(tmp_path, setup.scenario, servercov=setup.section())
    for name in ("plan.json", "test_load.py"):
        if not (project / name).exists():
            shutil.copy(SCENARIOS / "servers" / name, project / name)
    if setup.launcher:
        (project / setup.launcher[0]).write_text(setup.launcher[1])
    return project


def replay(project: Path, requests: list) -> Path:
    """Replay ``requests`` in-process through the scenario's framework; return the data file."""
    data_file = project / ".truth"
    if (project / "replay.py").exists():
        argv = [sys.executable, "replay.py"]
    else:  # the servers scenario: Flask's test client (tests/support.py)
        from tests.support import GROUND_TRUTH
        argv = [sys.executable, "-c", GROUND_TRUTH]
    subprocess.run([*argv, str(data_file), "webapp", json.dumps(requests)], cwd=project,
                   env=python_env(), check=True, timeout=RUN_TIMEOUT)
    return data_file


def measured(data_file: Path, source: Path) -> tuple[dict[str, set], dict[str, set]]:
    """Return ({file: lines}, {file: arcs}) recorded in ``data_file`` under ``source``."""
    data = CoverageData(str(data_file))
    data.read()
    lines, arcs = {}, {}
    for name in data.measured_files():
        if Path(name).is_relative_to(source):
            key = str(Path(name).relative_to(source))
            lines[key] = set(data.lines(name) or ())
            arcs[key] = set(data.arcs(name) or ())
    return lines, arcs


def differences(got: dict[str, set], want: dict[str, set]) -> list[str]:
    problems = []
    for name in sorted(set(got) | set(want)):
        missing, extra = want.get(name, set()) - got.get(name, set()), \
            got.get(name, set()) - want.get(name, set())
        if missing or extra:
            problems.append(f"{name}: missing {sorted(missing)[:20]}, extra {sorted(extra)[:20]}")
    return problems


def run_setup(tmp_path: Path, name: str) -> dict:
    """Run ``name`` and check everything the issue asks; return the figures measured."""
    setup = SETUPS[name]
    project = make_setup_project(tmp_path, setup)
    run = run_nose2(project, PATH=server_path(), LOAD_WORKERS=setup.workers,
                    LOAD_REPETITIONS=REPETITIONS, LOAD_RESETS_OK="1" if setup.resets_ok else "")
    log = project / "server.log"
    server_log = log.read_text(errors="replace") if log.exists() else "(no server log)"
    assert run.returncode == 0, run.stderr + "\n" + server_log[-4000:]
    stopped = re.search(r"^servercov: server stopped by (\S+) in ([\d.]+) s$", run.stderr, re.M)
    assert stopped, run.stderr
    expected_step = "shutdown_path" if setup.route else f"SIG{setup.stop_signal}"
    assert stopped[1] == expected_step, run.stderr + server_log[-4000:]
    load = json.loads((project / "load.json").read_text())
    assert load["problems"] == []
    requests = plan(project) + [["GET", p, None, 200] for p in ONCE]
    workers_file = project / "workers.json"
    if workers_file.exists():  # test_workers.py asked one route of each of two workers
        served = json.loads(workers_file.read_text())
        assert served["first"] != served["second"] and set(served.values()) <= set(load["pids"])
        requests += [["GET", p, None, 200] for p in WORKER_ROUTES]
    source = project / "webapp"
    lines, arcs = measured(project / ".coverage", source)
    truth_lines, truth_arcs = measured(replay(project, requests), source)
    assert truth_lines, "the ground truth recorded nothing"
    assert differences(lines, truth_lines) == [], server_log[-3000:]
    assert differences(arcs, truth_arcs) == []
    assert stray_data_files(project) == []
    assert_no_leftovers(project)
    figures = {"setup": name, "command": setup.command, "step": stopped[1],
               "stop_seconds": float(stopped[2]), "pids": len(load["pids"]),
               "lines": sum(map(len, lines.values())),
               "truth_lines": sum(map(len, truth_lines.values())),
               "arcs": sum(map(len, arcs.values())),
               "truth_arcs": sum(map(len, truth_arcs.values())),
               "log": server_log}
    table = os.environ.get("FRAMEWORKS_TABLE")
    if table:
        with open(table, "a") as f:
            f.write(json.dumps({k: v for k, v in figures.items() if k != "log"}) + "\n")
    return figures


@pytest.mark.parametrize("name", list(SETUPS))
def test_every_setup_is_measured_exactly(tmp_path, name):
    figures = run_setup(tmp_path, name)
    if SETUPS[name].workers == "2":
        assert figures["pids"] == 2
    if name.startswith(("hypercorn", "uvicorn")):
        # The lifespan's shutdown code ran in every worker (and was compared above).
        failures = [line for line in figures["log"].splitlines()
                    if "LifespanFailure" in line or "CancelledError" in line]
        assert failures == [], figures["log"][-6000:]
        assert figures["log"].count("lifespan shutdown done") >= int(
            SETUPS[name].workers.rstrip("+"))


def test_wsgiref_stops_through_the_route_every_time(tmp_path):
    """The first SystemExit may land in wsgiref's bare ``except:``: the stop sends it again."""
    setup = Setup("servers", "{python} wsgiref_app.py {port}", "1",
                  launcher=("wsgiref_app.py", WSGIREF_APP))
    project = make_setup_project(tmp_path, setup)
    (project / "test_load.py").write_text(textwrap.dedent('''
        import os, unittest, requests

        class Few(unittest.TestCase):
            def test_few(self):
                for path in ("/health/", "/items/1/", "/once/a/"):
                    self.assertEqual(requests.get(os.environ["SERVERCOV_URL"] + path,
                                                  timeout=10).status_code, 200)
        '''))
    requests = [["GET", p, None, 200] for p in ("/health/", "/items/1/", "/once/a/")]
    truth_lines, truth_arcs = measured(replay(project, requests), project / "webapp")
    for attempt in range(12):
        run = run_nose2(project, PATH=server_path())
        assert run.returncode == 0, run.stderr
        stopped = re.search(r"^servercov: server stopped by (\S+) in ([\d.]+) s$",
                            run.stderr, re.M)
        assert stopped and stopped[1] == "shutdown_path", (attempt, run.stderr)
        assert float(stopped[2]) < 3, (attempt, run.stderr)
        lines, arcs = measured(project / ".coverage", project / "webapp")
        assert differences(lines, truth_lines) == [], attempt
        assert differences(arcs, truth_arcs) == [], attempt
        assert stray_data_files(project) == []
        assert_no_leftovers(project)


REFUSED = {
    "gevent": Setup("servers", "{python} patched_app.py {port}", "1",
                    launcher=("patched_app.py", PATCHED_APPS["gevent"])),
    "eventlet": Setup("servers", "{python} patched_app.py {port}", "1",
                      launcher=("patched_app.py", PATCHED_APPS["eventlet"])),
    # gunicorn's worker class in its config file: the command line does not say it.
    "gunicorn-config-gevent": Setup(
        "servers", GUNICORN + " -c gunicorn_conf.py app:app", "1",
        launcher=("gunicorn_conf.py", 'worker_class = "gevent"\nworkers = 1\n')),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_greenlets_no_command_announces_are_refused_in_one_line(tmp_path, name):
    """Greenlets that nothing in the command names: one line names the setting to add."""
    setup = REFUSED[name]
    library = "eventlet" if name == "eventlet" else "gevent"
    project = make_setup_project(tmp_path, setup)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = run_nose2(project, PATH=server_path(), LOAD_WORKERS="1", LOAD_REPETITIONS="8",
                    SERVERCOV_RUN_DIR=str(run_dir))
    output = run.stderr + (project / "server.log").read_text()
    # Under monkey-patching the main thread's ident is a greenlet's: the route still stops it.
    assert "servercov: server stopped by shutdown_path" in run.stderr, output
    refusals = [line for line in output.splitlines()
                if "greenlets that coverage does not follow" in line]
    assert refusals, output
    assert f"add 'concurrency = {library}, thread' to [run] in " in refusals[0]
    if importlib.util.find_spec("nose2_servercov.engine.data.accounting") is None:
        # The session does not read problem files yet (the accounting branch does):
        # the server wrote its refusal where the contract says.
        problems = list(run_dir.glob("problem.*"))
        assert problems and f"concurrency = {library}" in problems[0].read_text()
    else:  # the session names the refusal and fails the run
        assert run.returncode != 0, output
        assert any(line.startswith("servercov:") and f"concurrency = {library}" in line
                   for line in run.stderr.splitlines()), run.stderr
    assert_no_leftovers(project)
