"""Helpers for the functional tests: scenario projects, real runs, real data, leftovers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from coverage import CoverageData

SCENARIOS = Path(__file__).resolve().parent / "functional" / "scenarios"
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


def python_env(**extra: str) -> dict[str, str]:
    """Return an environment for a child run: ours, minus what would confuse it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COVERAGE_", "SERVERCOV_")) and k != "PYTHONPATH"}
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
cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]], branch=True)
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
    """Replay ``requests`` in-process through the app's test client under coverage."""
    data_file = project / ".truth"
    subprocess.run(
        [sys.executable, "-c", GROUND_TRUTH, str(data_file), "webapp", json.dumps(requests)],
        cwd=project, env=python_env(), check=True, timeout=RUN_TIMEOUT)
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


def total_lines(files: Iterable[set[int]]) -> int:
    """Count lines over files."""
    return sum(len(lines) for lines in files)
