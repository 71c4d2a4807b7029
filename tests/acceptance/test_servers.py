"""Every server, every worker, every thread: measured exactly, stopped, nothing left.

Each variant runs the ``servers`` scenario for real: ``nose2 --with-servercov``
starts the server, the scenario's test_load.py sends the mixed plan from 8
threads (56 repetitions) and checks every answer and that every worker pid
served traffic; then this side checks the combined data against the same
requests replayed in-process through Flask's test client under coverage
(lines and arcs: nothing missing, nothing extra), how the server stopped,
that no process is left and that no per-process data file stays behind.

uWSGI is never skipped: without its binary these tests fail, telling how to
install it (it is in the ``test`` extra).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import coverage
import pytest
from coverage import CoverageData

from nose2_servercov.engine.config import known_bugs
from tests.support import (
    CORES,
    RUN_TIMEOUT,
    assert_no_leftovers,
    ground_truth,
    lines_differ,
    make_project,
    measured_lines,
    plan,
    python_env,
    run_nose2,
    servercov_lines,
    start_nose2,
    stray_data_files,
    use_core,
    wait_for_file,
)

pytestmark = pytest.mark.timeout(240)

BIN = Path(sys.executable).parent  # the console scripts (gunicorn, uwsgi, ...) beside python
ONCE = ["/once/a/", "/once/b/", "/once/c/", "/once/d/"]
GUNICORN = "--bind {host}:{port} --workers 4"
UWSGI_MASTER = ("uwsgi --master --http {host}:{port} --module app:app --processes 4 "
                "--threads 2 --master-fifo uwsgi.fifo")


@dataclass(frozen=True)
class Variant:
    """One way of serving the scenario app."""

    command: str
    workers: int  # processes that answer requests
    stop_signal: str  # the signal fallback that keeps every process's data

    def servercov(self, *, route: bool = True) -> str:
        lines = [f"command = {self.command}", "ready_path = /health/",
                 f"stop_signal = {self.stop_signal}", "shutdown_timeout = 10",
                 "log = server.log", "reports = term"]
        if route:
            lines.append("shutdown_path = /servercov/shutdown/")
        return "\n".join(lines) + "\n"


VARIANTS = {
    "werkzeug-threaded": Variant("{python} app.py {port}", 1, "TERM"),
    "gunicorn-sync-script": Variant(f"gunicorn {GUNICORN} app:app", 4, "TERM"),
    "gunicorn-sync-module": Variant(f"{{python}} -m gunicorn {GUNICORN} app:app", 4, "TERM"),
    "gunicorn-preload": Variant(f"{{python}} -m gunicorn {GUNICORN} --preload app:app", 4,
                                "TERM"),
    "gunicorn-gthread": Variant(f"gunicorn {GUNICORN} --worker-class gthread --threads 2 "
                                "app:app", 4, "TERM"),
    # uWSGI 2.0 reloads on TERM: INT stops the master; HUP stops each master-less worker.
    "uwsgi-master": Variant(UWSGI_MASTER, 4, "INT"),
    # Python's fork hooks on: coverage restarts in each worker, the master's data is saved apart.
    "uwsgi-master-osafterfork": Variant(UWSGI_MASTER + " --py-call-osafterfork", 4, "INT"),
    # uWSGI's own fork hooks (PyOS_BeforeFork/AfterFork_*): the same, and what works on 3.13+.
    "uwsgi-master-forkhooks": Variant(UWSGI_MASTER + " --py-call-uwsgi-fork-hooks", 4, "INT"),
    "uwsgi-nomaster-ini": Variant("uwsgi --set-ph port={port} --ini uwsgi-nomaster.ini", 4,
                                  "HUP"),
    "waitress": Variant("waitress-serve --threads 4 --listen {host}:{port} app:app", 1, "TERM"),
}
SIGNAL_STOPPED = ["werkzeug-threaded", "gunicorn-sync-script", "uwsgi-master",
                  "uwsgi-nomaster-ini", "waitress"]


def require_servers() -> None:
    """Fail loudly when a server program is missing: never skip one silently."""
    for program in ("gunicorn", "uwsgi", "waitress-serve"):
        assert (BIN / program).exists(), (
            f"{program} is not installed beside {sys.executable}: install the test extra "
            "(pip install -e '.[test]'; uWSGI builds from source and needs a C compiler)")


def server_path() -> str:
    return f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def measured_arcs(data_file: Path, source: Path) -> dict[str, set[tuple[int, int]]]:
    """Return {file name relative to ``source``: arcs} recorded in ``data_file``."""
    data = CoverageData(str(data_file))
    data.read()
    return {str(Path(name).relative_to(source)): set(data.arcs(name) or ())
            for name in data.measured_files() if Path(name).is_relative_to(source)}


@dataclass
class Outcome:
    """What one run did, for the assertions and the table in the issue note."""

    step: str
    stop_seconds: float
    data_files: int
    load: dict
    lines: int
    truth_lines: int
    arcs: int
    truth_arcs: int


# What auto picks for the scenario (branch = True), run by the tests above; the
# parametrized test below runs every other core the interpreter offers.
AUTO = "sysmon" if sys.version_info >= (3, 14) else "ctrace"
OTHER_CORES = [core for core in CORES if core != AUTO]


def lines_only(core: str) -> bool:
    """Return whether the scenario measures lines only under ``core`` (see ``use_core``)."""
    return core == "sysmon" and sys.version_info < (3, 14)


def run_variant(tmp_path: Path, name: str, *, route: bool = True, kill: bool = False,
                runner: str = "nose2", core: str = "auto",
                status: int = 0) -> tuple[Path, Outcome, str]:
    """Run the scenario under ``name`` and return the project, the outcome, the output."""
    require_servers()
    variant = VARIANTS[name]
    project = make_project(tmp_path, "servers", servercov=variant.servercov(route=route))
    if core != "auto":
        use_core(project, core)
    env = {"PATH": server_path(), "LOAD_WORKERS": str(variant.workers)}
    if kill:
        env["LOAD_KILL"] = "1"
    if runner == "nose2":
        run = run_nose2(project, **env)
    else:
        run = subprocess.run(
            [sys.executable, "-m", "nose2_servercov", "run", "--", sys.executable, "-m",
             "nose2", "-v"], cwd=project, env=python_env(**env), capture_output=True,
            text=True, timeout=RUN_TIMEOUT)
    output = run.stderr
    assert run.returncode == status, output + "\n" + tail(project / "server.log")
    started = re.search(r"^servercov: server started: .*, core (\w+)", output, re.M)
    assert started, output
    if core != "auto":  # under auto, a COVERAGE_CORE of the user's may decide
        assert started[1] == core, output
    stopped = re.search(r"^servercov: server stopped by (\S+) in ([\d.]+) s$", output, re.M)
    combined = re.search(r"^servercov: combined (\d+) data files? into", output, re.M)
    assert stopped and combined, output
    load = json.loads((project / "load.json").read_text())
    return project, Outcome(stopped[1], float(stopped[2]), int(combined[1]), load,
                            0, 0, 0, 0), output


def tail(log: Path, lines: int = 40) -> str:
    if not log.exists():
        return "(no server log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def branches(data_file: Path, source: Path) -> dict[str, set[tuple[int, int]]]:
    """Return {file name relative to ``source``: the branches coverage's report says ran}.

    coverage's sys.monitoring core records branches as the C tracer does, but
    the other arcs (a line to the next) only where a line runs for the first
    time in its process, so they depend on which requests each worker got
    first; its report reads only the branches, and so does this comparison.
    """
    cov = coverage.Coverage(data_file=str(data_file), branch=True, config_file=False)
    cov.load()
    out = data_file.with_name(data_file.name + ".branches.json")
    cov.json_report(outfile=str(out))
    files = json.loads(out.read_text())["files"]
    out.unlink()
    return {str(Path(name).relative_to(source)): {tuple(arc) for arc in found[
                "executed_branches"]}
            for name, found in files.items() if Path(name).is_relative_to(source)}


def compare_with_ground_truth(project: Path, outcome: Outcome, requests: list,
                              may_miss: list | None = None, *, arcs_too: bool = True,
                              core: str = "auto") -> None:
    """Assert measured == the requests replayed in-process, lines and arcs.

    ``may_miss``: requests whose lines may be absent (and only those lines).
    ``arcs_too``: False when the run measured lines only.  Under ``core``
    sysmon (the default on 3.14), the arcs compared are the branches (see
    :func:`branches`); the ground truth is the C tracer's.
    """
    source = project / "webapp"
    sysmon_arcs = (AUTO if core == "auto" else core) == "sysmon" and not lines_only("sysmon")
    arcs_of = branches if sysmon_arcs else measured_arcs
    truth = ground_truth(project, requests)
    truth_arcs = arcs_of(project / ".truth", source)
    lines = measured_lines(project / ".coverage", source)
    arcs = arcs_of(project / ".coverage", source)
    assert truth, "the ground truth recorded nothing"
    if may_miss:
        kept = ground_truth(project, [r for r in requests if r not in may_miss])
        kept_arcs = arcs_of(project / ".truth", source)
        # Everything requested from a process that lived on is there, nothing invented.
        for name in set(truth) | set(lines):
            got, must, can = lines.get(name, set()), kept.get(name, set()), truth.get(name, set())
            assert must <= got, f"{name}: missing lines {sorted(must - got)}"
            assert got <= can, f"{name}: extra lines {sorted(got - can)}"
            got, must, can = (arcs.get(name, set()), kept_arcs.get(name, set()),
                              truth_arcs.get(name, set()))
            assert must <= got, f"{name}: missing arcs {sorted(must - got)}"
            assert got <= can, f"{name}: extra arcs {sorted(got - can)}"
    else:
        assert lines_differ(lines, truth) == []
        if arcs_too:
            assert arcs == truth_arcs
        else:
            assert not any(arcs.values()), "a lines-only run recorded arcs"
    outcome.lines = sum(len(v) for v in lines.values())
    outcome.truth_lines = sum(len(v) for v in truth.values())
    outcome.arcs = sum(len(v) for v in arcs.values())
    outcome.truth_arcs = sum(len(v) for v in truth_arcs.values())


def record(name: str, how: str, outcome: Outcome) -> None:
    """Append the outcome to $SERVERS_TABLE (a JSON-lines file), when it is set."""
    table = os.environ.get("SERVERS_TABLE")
    if table:
        with open(table, "a") as f:
            f.write(json.dumps({"variant": name, "how": how, **outcome.__dict__}) + "\n")


def check_clean_end(project: Path) -> None:
    assert stray_data_files(project) == []
    assert_no_leftovers(project)


# uWSGI's py-call-osafterfork aborts every worker on 3.13+: servercov refuses it
# there (test_uwsgi_osafterfork_is_refused_in_one_line_on_python_313).
REFUSED = ["uwsgi-master-osafterfork"] if sys.version_info >= (3, 13) else []
MEASURABLE = [name for name in VARIANTS if name not in REFUSED]


@pytest.mark.parametrize("name", MEASURABLE)
def test_every_worker_and_thread_is_measured_exactly(tmp_path, name):
    project, outcome, output = run_variant(tmp_path, name)
    assert outcome.step == "shutdown_path", output
    assert outcome.load["problems"] == []
    assert len(outcome.load["pids"]) == VARIANTS[name].workers
    compare_with_ground_truth(project, outcome, plan(project) + [["GET", p, None, 200]
                                                                  for p in ONCE])
    check_clean_end(project)
    record(name, "shutdown_path", outcome)


@pytest.mark.parametrize("core", OTHER_CORES)
@pytest.mark.parametrize("name", MEASURABLE)
def test_every_core_measures_every_worker_and_thread_exactly(tmp_path, name, core):
    """The same as above under each core the interpreter offers, forced by ``core =``."""
    project, outcome, output = run_variant(tmp_path, name, core=core)
    assert outcome.step == "shutdown_path", output
    assert outcome.load["problems"] == []
    assert len(outcome.load["pids"]) == VARIANTS[name].workers
    compare_with_ground_truth(project, outcome, plan(project) + [["GET", p, None, 200]
                                                                  for p in ONCE],
                              arcs_too=not lines_only(core), core=core)
    check_clean_end(project)
    record(name, f"shutdown_path, core {core}", outcome)


@pytest.mark.parametrize("name", SIGNAL_STOPPED)
def test_the_stop_signal_alone_keeps_every_process_data(tmp_path, name):
    project, outcome, output = run_variant(tmp_path, name, route=False)
    assert outcome.step == f"SIG{VARIANTS[name].stop_signal}", output
    compare_with_ground_truth(project, outcome, plan(project) + [["GET", p, None, 200]
                                                                  for p in ONCE])
    check_clean_end(project)
    record(name, outcome.step, outcome)


@pytest.mark.parametrize("name", ["gunicorn-sync-script", "uwsgi-master"])
def test_a_worker_killed_mid_run_loses_only_its_own_data(tmp_path, name):
    """SIGKILL the worker that answered /once/a/; the others and its successor keep theirs.

    What is requested after the kill (the whole plan again and /after/kill/) must
    be there, and so must each one-off request answered by a surviving worker.
    /once/a/ ran only in the killed worker, which never saved: its lines are gone,
    which proves the kill really lost that worker's data; so the run fails, and
    the killed worker is named, alone, on a ``servercov: lost data:`` line.
    """
    project, outcome, output = run_variant(tmp_path, name, kill=True, status=1)
    load = outcome.load
    lost = [line for line in output.splitlines() if line.startswith("servercov: lost data:")]
    assert len(lost) == 1, output
    assert lost[0].startswith(f"servercov: lost data: pid {load['victim']} (")
    assert "ended while the tests ran without saving: killed by SIGKILL" in lost[0]
    assert outcome.step == "shutdown_path", output
    assert load["victim"] not in load["after_kill"]
    assert load["respawned"] in load["after_kill"]
    lost = [["GET", path, None, 200] for path, pid in load["one_off"].items()
            if pid == load["victim"]]
    assert ["GET", "/once/a/", None, 200] in lost
    requests = plan(project) + [["GET", p, None, 200] for p in [*ONCE, "/after/kill/"]]
    compare_with_ground_truth(project, outcome, requests, may_miss=lost)
    source = (project / "webapp" / "__init__.py").read_text().splitlines()
    once_a = source.index('        return jsonify(once="a", pid=os.getpid())') + 1
    assert once_a not in measured_lines(project / ".coverage", project / "webapp")[
        "__init__.py"]
    # The respawned worker saved too: one data file per process alive at the stop,
    # as many as without a kill.
    assert outcome.data_files == expected_data_files(name)
    check_clean_end(project)
    record(name, "kill+" + outcome.step, outcome)


def expected_data_files(name: str) -> int:
    """Return how many processes save data when ``name`` stops with 4 workers alive."""
    return {"gunicorn-sync-script": 5, "uwsgi-master": 4}[name]  # gunicorn's arbiter saves too


def test_servercov_run_measures_gunicorn_exactly(tmp_path):
    project, outcome, output = run_variant(tmp_path, "gunicorn-sync-module", runner="run")
    assert outcome.step == "shutdown_path", output
    assert len(outcome.load["pids"]) == 4
    compare_with_ground_truth(project, outcome, plan(project) + [["GET", p, None, 200]
                                                                  for p in ONCE])
    check_clean_end(project)
    record("gunicorn-sync-module", "servercov run", outcome)


def test_uwsgi_osafterfork_is_refused_in_one_line_on_python_313(tmp_path):
    """On 3.13+ uWSGI's py-call-osafterfork aborts every worker: refused before start.

    Below 3.13 the variant is measured exactly (the tests above); the
    workaround, py-call-uwsgi-fork-hooks, is measured exactly on every Python.
    """
    command = shlex.split(VARIANTS["uwsgi-master-osafterfork"].command)
    assert known_bugs.refusal(command, tmp_path, {}, python=(3, 12)) is None
    assert "unbit/uwsgi#2692" in str(known_bugs.refusal(command, tmp_path, {}, python=(3, 13)))
    hooks = shlex.split(VARIANTS["uwsgi-master-forkhooks"].command)
    assert known_bugs.refusal(hooks, tmp_path, {}, python=(3, 13)) is None
    if sys.version_info < (3, 13):
        assert "uwsgi-master-osafterfork" in MEASURABLE  # and measured exactly above
        return
    require_servers()
    project = make_project(tmp_path, "servers",
                           servercov=VARIANTS["uwsgi-master-osafterfork"].servercov())
    run = run_nose2(project, PATH=server_path(), LOAD_WORKERS="4")
    assert run.returncode != 0
    lines = servercov_lines(run.stderr)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("servercov: error: ") and "py-call-osafterfork aborts every " \
        "worker at fork on Python 3.1" in lines[0], lines
    assert "unbit/uwsgi#2692" in lines[0] and "py-call-uwsgi-fork-hooks = true" in lines[0]
    assert not (project / "server.log").exists(), "the server was started"
    assert_no_leftovers(project)


def test_uwsgi_is_installed_by_the_test_extra():
    """The project's own files install uWSGI for the tests (it is never skipped)."""
    setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    test_extra = re.search(r'"test": \[(.*?)\]', setup)
    assert test_extra and '"uwsgi' in test_extra[1]
    assert shutil.which("uwsgi", path=str(BIN)), "uwsgi is missing: pip install -e '.[test]'"


def test_the_scenario_app_holds_no_server_specific_code():
    """The measured source must not depend on the server that runs it."""
    webapp = Path(__file__).parent / "scenarios" / "servers" / "webapp"
    code = "\n".join(p.read_text() for p in webapp.rglob("*.py"))
    assert not re.search(r"import (uwsgi|gunicorn|waitress)|uwsgi\.|SERVER_SOFTWARE", code)


# uWSGI --lazy-apps loads the app in each worker, after the fork; a worker that
# uWSGI respawns while "respawn-slowly" exists takes a while to boot, as a big app does.
SLOW_BOOT_APP = '''
import os
import pathlib
import time

from webapp import create_app

if pathlib.Path("respawn-slowly").exists():
    pathlib.Path(f"booting.{os.getpid()}").touch()
    time.sleep(1.5)
app = create_app()
'''
# The suite's last test makes uWSGI respawn a worker, and ends while it boots.
RESPAWN_AT_THE_END = '''
import os
import pathlib
import signal
import time
import unittest

import requests


class RespawnAtTheEnd(unittest.TestCase):
    def test_a_worker_is_respawned_as_the_suite_ends(self):
        pid = requests.get(os.environ["SERVERCOV_URL"] + "/pid/", timeout=10).json()["pid"]
        pathlib.Path("respawn-slowly").touch()
        os.kill(pid, signal.SIGHUP)  # uWSGI's graceful reload of that one worker
        deadline = time.monotonic() + 30
        while not list(pathlib.Path().glob("booting.*")):
            self.assertLess(time.monotonic(), deadline, "no worker was respawned")
            time.sleep(0.01)
'''


def assert_uwsgi_stops_cleanly_at_the_end(tmp_path: Path, options: str,
                                          files: dict[str, str], marker: str) -> None:
    """Run ``files`` (an app module, a test) under uWSGI; assert an orderly, exact stop.

    ``marker``: the files the suite's end must have seen (booting.*, saving.*).
    """
    project = uwsgi_project(tmp_path, options, files)
    run = run_nose2(project, PATH=server_path())
    assert_uwsgi_stopped_cleanly(project, run.returncode, run.stderr, marker)


def uwsgi_project(tmp_path: Path, options: str, files: dict[str, str],
                  processes: int = 2) -> Path:
    """Return a project that runs ``files`` (an app module, a test) under a uWSGI master."""
    require_servers()
    module = next(name for name in files if name.endswith("_app.py"))[:-3]
    variant = Variant(f"uwsgi --master --http {{host}}:{{port}} --module {module}:app "
                      f"--processes {processes} {options} --master-fifo uwsgi.fifo",
                      processes, "INT")
    project = make_project(tmp_path, "servers", servercov=variant.servercov())
    (project / "test_load.py").unlink()
    for name, text in files.items():
        (project / name).write_text(text)
    return project


def assert_uwsgi_stopped_cleanly(project: Path, returncode: int, output: str,
                                 marker: str) -> None:
    """Assert that the run stopped uWSGI by the route, with every line kept, nothing left."""
    output += "\n" + tail(project / "server.log")
    assert returncode == 0, output
    assert re.search(r"^servercov: server stopped by shutdown_path in ", output, re.M), output
    assert "lost data" not in output, output
    assert list(project.glob(marker)), f"no {marker} file: the window was not reached"
    requests = [["GET", "/health/", None, 200], ["GET", "/pid/", None, 200]]
    assert lines_differ(measured_lines(project / ".coverage", project / "webapp"),
                        ground_truth(project, requests)) == []
    check_clean_end(project)


def test_a_uwsgi_worker_booting_at_the_shutdown_is_stopped_by_the_route(tmp_path):
    """The shutdown route waits for a worker still booting before it stops uWSGI.

    uWSGI's stop (its master's SIGHUP to each worker) reaches a worker that is
    still booting while the master's handlers are in place: it ignores the stop
    and the master waits for it for good.  Recycled workers (max-requests) put
    one there right at the end of a suite.  Here the route must still stop the
    server, in the orderly way, with every line kept.
    """
    assert_uwsgi_stops_cleanly_at_the_end(
        tmp_path, "--lazy-apps",
        {"slow_boot_app.py": SLOW_BOOT_APP, "test_respawn.py": RESPAWN_AT_THE_END},
        "booting.*")


# A worker that leaves while "exit-slowly" exists takes a while to exit, as one
# with a big data file to save does.
SLOW_EXIT_APP = '''
import atexit
import os
import pathlib
import time

from webapp import create_app


def slow_exit():
    if pathlib.Path("exit-slowly").exists():
        pathlib.Path(f"saving.{os.getpid()}").touch()
        time.sleep(1.5)


atexit.register(slow_exit)
app = create_app()
'''
# The suite's last test makes a worker reach max-requests, and ends while it saves.
RECYCLE_AT_THE_END = '''
import os
import pathlib
import time
import unittest

import requests


class RecycleAtTheEnd(unittest.TestCase):
    def test_a_worker_is_recycled_as_the_suite_ends(self):
        pathlib.Path("exit-slowly").touch()
        deadline = time.monotonic() + 30
        while not list(pathlib.Path().glob("saving.*")):  # a connection each: no keep-alive
            self.assertLess(time.monotonic(), deadline, "no worker was recycled")
            requests.get(os.environ["SERVERCOV_URL"] + "/pid/", timeout=10)
'''


def test_a_uwsgi_worker_saving_at_the_shutdown_keeps_its_data(tmp_path):
    """uWSGI's stop does not end a worker that is saving its data on its way out.

    The stop's SIGHUP runs a handler that calls exit() again, which ended a
    worker recycled by max-requests mid-save, its data file left empty.
    """
    assert_uwsgi_stops_cleanly_at_the_end(
        tmp_path, "--max-requests 3 --min-worker-lifetime 0",
        {"slow_exit_app.py": SLOW_EXIT_APP, "test_recycle.py": RECYCLE_AT_THE_END},
        "saving.*")


# From the first request on, a worker's way out waits, once "hold-at-exit" exists,
# for a byte from the test: as an exit that has work to do before servercov saves.
# Registered after servercov's exit functions, it runs before them.
HOLD_APP = '''
import atexit
import os
import pathlib

from webapp import create_app

flask_app = create_app()
registered = []


def hold_at_exit():
    if pathlib.Path("hold-at-exit").exists():
        pathlib.Path(f"holding.{os.getpid()}").touch()
        with open("hold", "rb") as hold:  # the test holds it open for writing
            hold.read(1)


def app(environ, start_response):
    if not registered:
        registered.append(True)
        atexit.register(hold_at_exit)
    return flask_app(environ, start_response)
'''
# The suite ends with the shutdown request due to be the worker's last (max-requests 3),
# and with the uWSGI master stopped (SIGSTOP): it reads its FIFO when the test says.
LAST_REQUEST_AT_THE_END = '''
import os
import pathlib
import signal
import time
import unittest

import requests


class LastRequestAtTheEnd(unittest.TestCase):
    def test_the_shutdown_is_the_last_request_of_a_worker(self):
        url = os.environ["SERVERCOV_URL"] + "/pid/"
        first = pid = requests.get(url, timeout=10).json()["pid"]
        deadline = time.monotonic() + 30
        while pid == first:  # a connection each: no keep-alive
            self.assertLess(time.monotonic(), deadline, "no worker was recycled")
            pid = requests.get(url, timeout=10).json()["pid"]
        # The new worker has answered one request; a second, and the shutdown is its third.
        self.assertEqual(requests.get(url, timeout=10).json()["pid"], pid)
        pathlib.Path("hold-at-exit").touch()
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        master = int(status.split("PPid:")[1].split()[0])
        os.kill(master, signal.SIGSTOP)
        pathlib.Path("stopped.tmp").write_text(f"{master} {pid}")
        pathlib.Path("stopped.tmp").rename("stopped")
'''


def fifo_unread(fd: int) -> int:
    """Return how many bytes wait unread in the FIFO that ``fd`` reads (FIONREAD; none read)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])


def reads_fifo(pid: int, fifo: Path) -> bool:
    """Return whether process ``pid`` holds ``fifo`` open for reading."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(fifo.resolve()):
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                flags = int(info.split("flags:")[1].split()[0], 8)
                if flags & os.O_ACCMODE == os.O_RDONLY:
                    return True
    except OSError:  # gone, or a descriptor closed meanwhile
        pass
    return False


def wait_until(condition: Callable[[], object], run: subprocess.Popen[str], what: str,
               timeout: float = 60) -> None:
    """Wait, under a deadline, until ``condition()`` holds; fail if ``run`` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.01)


def run_with_a_late_master(tmp_path: Path,
                           late: Callable[[Path, int], object]) -> tuple[Path, int, str, int]:
    """Run the suite whose shutdown is a worker's last, its master stopped until ``late``.

    ``late(project, worker)`` is asked once ``q`` waits unread in the master
    FIFO; the master reads it when that holds.  Return the project, the run's
    exit status, its output and the worker's pid.
    """
    project = uwsgi_project(tmp_path, "--max-requests 3 --min-worker-lifetime 0",
                            {"hold_app.py": HOLD_APP, "test_last.py": LAST_REQUEST_AT_THE_END},
                            processes=1)
    os.mkfifo(project / "hold")
    hold = os.open(project / "hold", os.O_RDWR)  # a writer: the worker's read waits for a byte
    log = project / "server.log"
    run = start_nose2(project, PATH=server_path())
    stopped = None
    try:
        wait_for_file(project / "stopped", process=run)
        stopped, worker = map(int, (project / "stopped").read_text().split())
        fifo = os.open(project / "uwsgi.fifo", os.O_RDONLY | os.O_NONBLOCK)
        try:
            wait_until(lambda: fifo_unread(fifo) > 0, run, "q was written to the FIFO")
            wait_until(lambda: late(project, worker), run, "the moment came to read q")
        finally:
            os.close(fifo)
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        wait_until(lambda: f"Gracefully killing worker 1 (pid: {worker})" in log.read_text(),
                   run, "the worker got the master's SIGHUP")
        os.write(hold, b"x")
        output, _ = run.communicate(timeout=RUN_TIMEOUT)
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        os.close(hold)
        if run.poll() is None:
            run.kill()
            run.communicate()
    return project, run.returncode, output, worker


def test_a_uwsgi_master_late_on_its_fifo_does_not_cut_the_last_save(tmp_path):
    """The route's ``q`` stops a worker in its last request, however late the master reads it.

    uWSGI's master acts on its FIFO in its own time.  Had it sent its SIGHUP
    once the worker was out of its last request (max-requests) and on its way
    out, the handler's exit() would have ended the worker before it saved.
    Here the master, stopped, reads ``q`` only once the worker is either out
    of the request (holding at exit) or watching the FIFO from the request.
    """
    project, returncode, output, _ = run_with_a_late_master(
        tmp_path, lambda project, worker: list(project.glob("holding.*"))
        or reads_fifo(worker, project / "uwsgi.fifo"))
    assert_uwsgi_stopped_cleanly(project, returncode, output, "holding.*")


def test_a_uwsgi_master_that_does_not_act_on_q_in_time_is_named(tmp_path):
    """Past its bound the route says that the master has not acted, and the loss is named.

    The master here reads ``q`` only once the route has given up waiting and
    the worker is out of its request, holding at exit: its SIGHUP then ends
    the worker before it saves, the one window left, and the run says so.
    """
    def gave_up(project: Path, worker: int) -> bool:
        return ("servercov: uWSGI's master did not act on 'q' within" in
                (project / "server.log").read_text() and
                (project / f"holding.{worker}").exists())

    project, returncode, output, worker = run_with_a_late_master(tmp_path, gave_up)
    output += "\n" + tail(project / "server.log")
    assert returncode != 0, output
    assert re.search(rf"^servercov: uWSGI's master did not act on 'q' within 3 s: its stop "
                     rf"may end worker {worker} before it saves$", output, re.M), output
    assert re.search(rf"^servercov: lost data: pid {worker} ", output, re.M), output
    assert_no_leftovers(project)
