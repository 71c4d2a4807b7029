"""A measured process answers a save request with whether a dump now holds its data.

The run tells a process that lost data from one that had none by this answer:
a process that measured nothing (gunicorn's master without --preload,
uvicorn's supervisor) answers "N empty" and writes no dump, so that killing it
afterwards loses nothing; one that measured something answers "N dumped" once
its dump is in place.  The process here is a real Python started the way
servercov starts a server (the bootstrap sitecustomize, coverage's rcfile,
the run and control folders), measured by real coverage.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import coverage

from nose2_servercov import protocol
from tests.support import REPO, python_env

# The process runs nothing of the measured folder until told to on its stdin.
SERVER = """
import sys
for line in sys.stdin:
    import work
    work.classify(int(line))
    print("ran", flush=True)
"""
WORK = """
def classify(n):
    if n % 2:
        return "odd"
    return "even"
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "work.py").write_text(WORK)
    (tmp_path / ".coveragerc").write_text(
        f"[run]\nsource = {tmp_path / 'app'}\nparallel = true\n"
        f"data_file = {tmp_path / '.coverage'}\n")
    control, run_dir = tmp_path / "control", tmp_path / "run"
    control.mkdir()
    run_dir.mkdir()
    env = python_env(PYTHONPATH=os.pathsep.join([str(REPO / "nose2_servercov" / "bootstrap"),
                                                 str(tmp_path / "app")]),
                     **{protocol.COVERAGE_START_VARIABLE: str(tmp_path / ".coveragerc"),
                        protocol.CONTROL_VARIABLE: str(control),
                        protocol.RUN_DIR_VARIABLE: str(run_dir)})
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=tmp_path, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    return server, control


def _answer(control: Path, pid: int, expected: str, server: subprocess.Popen[str]) -> str:
    """Wait until ``pid`` answers ``expected``'s generation, under a deadline; return it."""
    generation = expected.split()[0]
    deadline = time.monotonic() + 60
    while True:
        try:
            text = (control / protocol.answer_file(pid)).read_text()
        except FileNotFoundError:
            text = ""
        if text.split()[:1] == [generation]:
            return text
        assert server.poll() is None, f"the process ended (exit {server.returncode})"
        assert time.monotonic() < deadline, f"no answer {expected!r} within 60 s: {text!r}"
        time.sleep(0.01)


def _request(control: Path, pid: int, generation: int) -> None:
    """Ask for a save as the run does: the request file, then a byte in the wake FIFO."""
    (control / protocol.REQUEST_TEMPORARY).write_text(str(generation))
    os.replace(control / protocol.REQUEST_TEMPORARY, control / protocol.REQUEST_FILE)
    fd = os.open(control / protocol.wake_file(pid), os.O_WRONLY | os.O_NONBLOCK)
    try:
        assert stat.S_ISFIFO(os.fstat(fd).st_mode)
        os.write(fd, b"!")
    finally:
        os.close(fd)


def test_the_answer_says_whether_a_dump_holds_the_process_data(tmp_path: Path) -> None:
    server, control = _start(tmp_path)
    assert server.stdin is not None and server.stdout is not None
    try:
        registered = _answer(control, server.pid, protocol.REGISTERED_ANSWER, server)
        assert registered == protocol.REGISTERED_ANSWER
        dump = tmp_path / f".coverage{protocol.DUMP_INFIX}{server.pid}"

        _request(control, server.pid, 1)
        assert _answer(control, server.pid, "1 empty", server) == "1 empty"
        assert protocol.parse_answer("1 empty") == (1, False)
        assert not dump.exists(), "a process that measured nothing wrote a dump"

        server.stdin.write("3\n")
        server.stdin.flush()
        assert server.stdout.readline() == "ran\n"
        _request(control, server.pid, 2)
        assert _answer(control, server.pid, "2 dumped", server) == "2 dumped"
        data = coverage.CoverageData(str(dump))
        data.read()
        work = str(tmp_path / "app" / "work.py")
        assert data.measured_files() == {work}
        assert sorted(data.lines(work) or ()) == [2, 3, 4]  # def, if, return "odd"
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    assert server.returncode == 0, server.stderr.read()
