"""Helpers for the functional tests: scenario projects, real runs, real data, leftovers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

from coverage import CoverageData

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 120


def make_project(tmp_path: Path, scenario: str = "basic", *, servercov: str | None = None,
                 run: str | None = None) -> Path:
    """Copy a scenario into ``tmp_path``; replace or extend its rcfile sections."""
    project = tmp_path / scenario
    shutil.copytree(SCENARIOS / scenario, project)
    if servercov is not None or run is not None:
        rcfile = project / ".apirc"
        text = rcfile.read_text()
        if run is not None:
            text = text.replace("[run]\n", "[run]\n" + textwrap.dedent(run).strip() + "\n", 1)
        if servercov is not None:
            text = text.split("[servercov]")[0] + "[servercov]\n" + textwrap.dedent(servercov)
        rcfile.write_text(text)
    return project


# What an outer measured run (pytest-cov, ``coverage run -m pytest``) sets for itself:
# handed on, the child runs would be measured into its data file or write theirs
# elsewhere.  Every other COVERAGE_* variable (COVERAGE_CORE above all) is the
# user's and is passed on, as a user's shell passes it to servercov.
OUTER_RUN_ONLY = ("COVERAGE_FILE", "COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG",
                  "COVERAGE_RCFILE", "COVERAGE_DEBUG", "COVERAGE_DEBUG_FILE")


# The cores this interpreter offers (coverage's [run] core values).  sys.monitoring
# measures branches only from Python 3.14: below, a sysmon run measures lines.
CORES = ["ctrace", "pytrace"] + (["sysmon"] if sys.version_info >= (3, 12) else [])


def use_core(project: Path, core: str) -> None:
    """Make ``project``'s rcfile force ``core`` (``[servercov]`` must be its last section)."""
    rcfile = project / ".apirc"
    text = rcfile.read_text()
    if core == "sysmon" and sys.version_info < (3, 14):
        text = text.replace("branch = True", "branch = False")
    rcfile.write_text(text.rstrip("\n") + f"\ncore = {core}\n")


def python_env(**extra: str) -> dict[str, str]:
    """Return an environment for a child run: ours, minus what would confuse it."""
    env = {k: v for k, v in os.environ.items()
           if k not in OUTER_RUN_ONLY and not k.startswith("SERVERCOV_") and k != "PYTHONPATH"}
    env.update(extra)
    return env


def run_nose2(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m nose2 --with-servercov`` in ``project`` and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "nose2", "--with-servercov", *args], cwd=project,
        env=python_env(**env), capture_output=True, text=True, timeout=RUN_TIMEOUT)


def start_nose2(project: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start ``python -m nose2 --with-servercov`` in ``project`` without waiting."""
    return subprocess.Popen(
        [sys.executable, "-m", "nose2", "--with-servercov", *args], cwd=project,
        env=python_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_file(path: Path, *, process: subprocess.Popen[str] | None = None,
                  timeout: float = 60) -> None:
    """Wait until ``path`` exists (or ``process`` ends), under a deadline."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended before {path} appeared")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def servercov_lines(output: str) -> list[str]:
    """Return the ``servercov:`` lines of a run's output."""
    return [line for line in output.splitlines() if line.startswith("servercov:")]


def measured_lines(data_file: Path, source: Path) -> dict[str, set[int]]:
    """Return {file name relative to ``source``: lines} recorded in ``data_file``."""
    data = CoverageData(str(data_file))
    data.read()
    result = {}
    for name in data.measured_files():
        path = Path(name)
        if path.is_relative_to(source):
            result[str(path.relative_to(source))] = set(data.lines(name) or ())
    return result


GROUND_TRUTH = """
import json, os, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]], branch=True, config_file=False)
cov.start()
os._exit = lambda code: (_ for _ in ()).throw(RuntimeError(f"os._exit({code})"))
from webapp import create_app
app = create_app()
app.testing = False
client = app.test_client()
for method, path, body, status in json.loads(sys.argv[3]):
    client.open(path, method=method, json=body)
cov.stop()
cov.save()
"""


def ground_truth(project: Path, requests: Sequence[Sequence[object]]) -> dict[str, set[int]]:
    """Replay ``requests`` in-process through the app's test client under coverage.

    Under the C tracer, whatever the interpreter: its arcs do not depend on the
    order the requests come in (coverage's sys.monitoring core, the default on
    3.14, records fall-through arcs only where a line runs for the first time).
    """
    data_file = project / ".truth"
    subprocess.run(
        [sys.executable, "-c", GROUND_TRUTH, str(data_file), "webapp", json.dumps(requests)],
        cwd=project, env=python_env(COVERAGE_CORE="ctrace"), check=True, timeout=RUN_TIMEOUT)
    return measured_lines(data_file, project / "webapp")


def plan(project: Path) -> list[list[object]]:
    """Return the scenario's request plan."""
    return json.loads((project / "plan.json").read_text())


def processes_in(folder: Path) -> list[int]:
    """Return the pids of live processes whose working directory is inside ``folder``."""
    found = []
    folder = folder.resolve()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and cwd.is_relative_to(folder):
            found.append(int(entry))
    return found


def assert_no_leftovers(folder: Path) -> None:
    """Fail, and end them, if processes were left behind in ``folder``."""
    left = processes_in(folder)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind in {folder}: {left}"


def stray_data_files(project: Path) -> list[str]:
    """Return per-process data files left after a run (the combined one is expected)."""
    return sorted(p.name for p in project.glob(".coverage.*"))


class ListeningSocket:
    """A port held open by this test process, as "another program" would hold it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def lines_differ(measured: dict[str, set[int]], truth: dict[str, set[int]]) -> list[str]:
    """Describe per file the lines missing from and extra in ``measured``."""
    problems = []
    for name in sorted(set(measured) | set(truth)):
        missing = truth.get(name, set()) - measured.get(name, set())
        extra = measured.get(name, set()) - truth.get(name, set())
        if missing or extra:
            problems.append(f"{name}: missing {sorted(missing)}, extra {sorted(extra)}")
    return problems


def assert_exact(project: Path, requests: Sequence[Sequence[object]]) -> dict[str, set[int]]:
    """Assert the combined data holds exactly the lines ``requests`` ran in-process."""
    measured = measured_lines(project / ".coverage", project / "webapp")
    truth = ground_truth(project, requests)
    assert truth, "the ground truth recorded nothing"
    assert lines_differ(measured, truth) == []
    return measured


# --- the servercov command, serve and load (tests/cli/test_run.py, test_serve.py) ---

GUNICORN_4 = """
    command = {python} -m gunicorn -w 4 -b {host}:{port} --graceful-timeout 10 webapp:create_app()
    ready_path = /health/
    reports = json
    """
# Requests the load sends; it adds one kind after another, so that what ran
# before a given moment is known.
LOAD_KINDS: list[list[object]] = [
    ["GET", "/health/", None, 200],
    ["GET", "/items/1/", None, 200],
    ["GET", "/items/2/", None, 200],
    ["POST", "/echo/", {"a": 1}, 200],
    ["GET", "/items/1000/", None, 404],
    ["GET", "/once/a/", None, 200],
    ["GET", "/once/b/", None, 200],
    ["GET", "/never/", None, 200],
    ["GET", "/missing/", None, 404],
]


def servercov_command(*args: str) -> list[str]:
    """Return the argv of ``servercov ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "nose2_servercov", *args]


def run_servercov(project: Path, *args: str, timeout: float = RUN_TIMEOUT,
                  **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``servercov ARGS`` in ``project`` and return what it did."""
    return subprocess.run(servercov_command(*args), cwd=project, env=python_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def start_serve(project: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start ``servercov serve`` in ``project``, in its own process group, output to serve.log."""
    log = open(project / "serve.log", "w")  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(servercov_command("serve", *args), cwd=project,
                                env=python_env(**env), stdout=log, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    finally:
        log.close()


@contextlib.contextmanager
def running_serve(project: Path, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``servercov serve`` in ``project``; no serve outlives the block.

    The test ends the serve its own way (``stop_serve``, a signal, a kill);
    if it has not when the block ends (an assertion failed), the serve's
    process group is SIGKILLed, so a failing test never leaves one running.
    """
    serve = start_serve(project, *args, **env)
    try:
        yield serve
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)


def serve_state(project: Path, serve: subprocess.Popen[str], timeout: float = 60) -> dict:
    """Wait for the running serve's state file and return it."""
    path = project / ".servercov" / "serve.json"
    try:
        wait_for_file(path, process=serve, timeout=timeout)
    except AssertionError:
        raise AssertionError((project / "serve.log").read_text()) from None
    return json.loads(path.read_text())


def stop_serve(project: Path, serve: subprocess.Popen[str]) -> None:
    """End a serve the orderly way: ``servercov stop`` succeeds, then the serve exits 0."""
    stopped = run_servercov(project, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert end_process(serve) == 0


def end_process(process: subprocess.Popen[str], timeout: float = 60) -> int:
    """Wait for ``process`` under a deadline; kill its group if it overruns."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        raise


class Load:
    """A bounded concurrent load: ``threads`` clients for at most ``seconds``.

    Request kinds are taken from ``kinds`` in turn; ``unlock_every`` seconds
    one more kind joins, so :meth:`kinds_done_before` tells what had
    certainly run on the server before a given moment.
    """

    def __init__(self, url: str, kinds: Sequence[Sequence[object]], *, threads: int = 6,
                 seconds: float = 4.0, unlock_every: float = 0.4,
                 max_requests: int = 50_000) -> None:
        import threading

        self.url = urllib.parse.urlsplit(url)
        self.kinds = [list(kind) for kind in kinds]
        self.seconds = seconds
        self.unlock_every = unlock_every
        self.max_requests = max_requests
        self.first_done: dict[int, float] = {}
        self.sent: set[int] = set()
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.count = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                        for n in range(threads)]

    def start(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(30)

    def stop_once_every_kind_is_sent(self, timeout: float = 60) -> None:
        """Stop the load once each kind has been sent (one unlocks every ``unlock_every``).

        A load that ends when something else is done (six snapshots, say) may
        end before the last kinds unlock on a fast run: wait for them, bounded.
        """
        deadline = time.monotonic() + timeout
        while len(self.kinds_sent()) < len(self.kinds) and time.monotonic() < deadline:
            if self.stopped.wait(0.02):
                break
        self.stop()

    def wait(self) -> None:
        """Let the load run its course, then stop it."""
        self.stopped.wait(max(self.started + self.seconds - time.monotonic(), 0))
        self.stop()

    def _client(self, number: int) -> None:
        turn = number
        while not self.stopped.is_set():
            elapsed = time.monotonic() - self.started
            with self.lock:
                if elapsed > self.seconds or self.count >= self.max_requests:
                    return
                self.count += 1
            unlocked = min(len(self.kinds), 1 + int(elapsed / self.unlock_every))
            index = turn % unlocked
            turn += 1
            self._request(index)

    def _request(self, index: int) -> None:
        method, path, body, status = self.kinds[index]
        headers = {"Content-Type": "application/json"} if body is not None else {}
        sent = time.monotonic()
        with self.lock:
            self.sent.add(index)
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
        try:
            conn.request(str(method), str(path),
                         body=json.dumps(body) if body is not None else None, headers=headers)
            answer = conn.getresponse()
            answer.read()
            got: object = answer.status
        except (OSError, http.client.HTTPException) as exc:
            got = repr(exc)
        finally:
            conn.close()
        done = time.monotonic()
        with self.lock:
            self.latencies.append(done - sent)
            if got != status:
                self.failures.append(f"{method} {path}: {got}")
            else:
                self.first_done.setdefault(index, done)

    def kinds_done_before(self, moment: float) -> list[list[object]]:
        """Return the request kinds that had been answered before ``moment``."""
        with self.lock:
            return [self.kinds[i] for i, t in sorted(self.first_done.items()) if t < moment]

    def kinds_sent(self) -> list[list[object]]:
        """Return the request kinds sent at least once."""
        with self.lock:
            return [self.kinds[i] for i in sorted(self.sent)]


# --- orphans (tests/acceptance/test_orphans.py, tests/soak/soak.py) ---

def marked(marker: str) -> dict[int, str]:
    """Return {pid: command line} of the live processes whose environment holds ``marker``."""
    needle = f"ORPHAN_MARKER={marker}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ and state != b"Z":
            found[int(entry)] = command
    return found
