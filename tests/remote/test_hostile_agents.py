"""``servercov collect`` against agents that do not play fair, beside one good agent.

The agents are one fake HTTP server written here (each path prefix an agent
of its own kind); ``collect`` is the real command in a process of its own,
whose own peak RSS is read from ``wait4``.  Every hostile agent is named in one
line with its URL, nothing it sends reaches the terminal raw, memory stays
bounded, the drip ends at the deadline, and the good agent's data is combined
and reported exactly (exit 1 for the others).
"""

from __future__ import annotations

import shutil
import socketserver
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from coverage import CoverageData

from nose2_servercov import protocol
from nose2_servercov.remote.client import MAX_DATA_BYTES
from tests.support import (
    ground_truth,
    lines_differ,
    make_project,
    measured_lines,
    plan,
    python_env,
    servercov_command,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(300)

DEADLINE = 31  # collect's deadline for a snapshot: shutdown_timeout (1 s) + 30
MAX_RSS_MIB = 128  # its own peak is about 55: python, coverage and sqlite

ESCAPES = "\x1b[2J\x1b]0;owned\x07 hello\r\nmore"


class Agents(socketserver.ThreadingTCPServer):
    """The fake agents: ``/<kind>/snapshot`` answers the way ``kind`` says."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.files = files
        self.stopped = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


DATA = {"Content-Type": protocol.AGENT_DATA_TYPE}


class _Answer(socketserver.StreamRequestHandler):
    server: Agents

    def handle(self) -> None:
        request = self.rfile.readline(65536).decode("latin-1").split()
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass
        kind = request[1].strip("/").split("/")[0] if len(request) > 1 else ""
        try:
            self.answers()[kind]()
        except OSError:
            pass  # collect hung up: what we want

    def answers(self) -> dict[str, Callable[[], None]]:
        return {"endless": self.endless, "drip": self.drip, "huge": self.huge,
                "escapes": self.escapes, "redirect": self.redirect,
                **{name: self.file_answer(name) for name in self.server.files}}

    def file_answer(self, name: str) -> Callable[[], None]:
        body = self.server.files[name]
        return lambda: self.wfile.write(
            _head("200 OK", {**DATA, "Content-Length": str(len(body))}) + body)

    def endless(self) -> None:
        self.wfile.write(_head("200 OK", {**DATA, "Transfer-Encoding": "chunked"}))
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"\0" * (1 << 16))
        while not self.server.stopped.is_set():
            self.wfile.write(chunk)

    def drip(self) -> None:
        self.wfile.write(_head("200 OK", {**DATA, "Content-Length": "100000"}))
        while not self.server.stopped.wait(0.5):
            self.wfile.write(b"\0")

    def huge(self) -> None:  # 300 MB, no length: it ends when the connection does
        self.wfile.write(_head("200 OK", {**DATA, "Connection": "close"}))
        block = b"\0" * (1 << 20)
        for _ in range(300):
            self.wfile.write(block)

    def escapes(self) -> None:
        body = ESCAPES.encode()
        self.wfile.write(_head("500 Oops", {"Content-Length": str(len(body))}) + body)

    def redirect(self) -> None:
        self.wfile.write(_head("302 Found", {"Location": f"{self.server.url}/good",
                                             "Content-Length": "0"}))


def data_files(project: Path, truth_file: Path) -> dict[str, bytes]:
    """Return the data files the agents send: good, and bad in each way a check must catch."""
    made = project.parent / "made"
    made.mkdir()
    good = truth_file.read_bytes()
    lines = CoverageData(str(made / "lines"))
    truth = CoverageData(str(truth_file))
    truth.read()
    lines.add_lines({name: truth.lines(name) or [] for name in truth.measured_files()})
    lines.write()
    elsewhere = CoverageData(str(made / "elsewhere"))
    elsewhere.add_arcs({"/nowhere/srv/zzz_unknown.py": [(-1, 1), (1, -1)]})
    elsewhere.write()
    long_name = CoverageData(str(made / "long"))
    long_name.add_lines({"/srv/" + "a" * 20_000_000 + ".py": [1]})
    long_name.write()
    view = made / "view"
    shutil.copyfile(truth_file, view)
    with sqlite3.connect(view) as bomb:  # 44 kB that would expand to a million rows
        bomb.executescript("""
            DROP TABLE file;
            CREATE TABLE t (x);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
            INSERT INTO t SELECT i FROM n;
            CREATE VIEW file AS SELECT a.rowid * 1000 + b.rowid AS id,
                '/srv/' || a.rowid || '/' || b.rowid || '.py' AS path FROM t a, t b;
            """)
    bomb.close()
    return {"good": good, "lines": (made / "lines").read_bytes(),
            "elsewhere": (made / "elsewhere").read_bytes(), "long": (made / "long").read_bytes(),
            "view": view.read_bytes()}


# Linux keeps a process's peak RSS across execve, and a child spawned from
# pytest starts with pytest's own peak (hundreds of MB late in a run).  A
# small Python in between forks a process with a fresh count, execs the
# command there and reports that peak alone.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run_measured(project: Path, *args: str) -> tuple[int, str, int]:
    """Run ``servercov ARGS``; return its exit status, stderr and its own peak RSS (KiB)."""
    peak = project / "collect.peak"
    with open(project / "collect.err", "w+") as err:
        status = subprocess.call([sys.executable, "-c", _MEASURE, str(peak),
                                  *servercov_command(*args)], cwd=project, env=python_env(),
                                 stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        return status, err.read(), int(peak.read_text())


def test_collect_names_every_hostile_agent_and_reports_the_good_one(tmp_path):
    project = make_project(tmp_path, servercov="reports = json\nshutdown_timeout = 1\n")
    truth = ground_truth(project, plan(project))
    files = data_files(project, project / ".truth")
    (project / ".truth").unlink()
    agents = Agents(files)
    thread = threading.Thread(target=agents.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    kinds = ["good", "endless", "drip", "huge", "view", "long", "escapes", "redirect",
             "elsewhere", "lines"]
    urls = {kind: f"{agents.url}/{kind}" for kind in kinds}
    try:
        status, err, peak_kib = run_measured(project, "collect", *urls.values())
    finally:
        agents.stopped.set()
        agents.shutdown()
        agents.server_close()
        thread.join(30)
    said = servercov_lines(err)
    expected = {
        "good": "snapshot, ",
        "endless": f"cannot fetch its data: an answer over the cap of {MAX_DATA_BYTES} bytes",
        "huge": f"cannot fetch its data: an answer over the cap of {MAX_DATA_BYTES} bytes",
        "drip": f"cannot fetch its data: no whole answer within {DEADLINE} s",
        "view": "sent a data file that is refused: file is a view, not a table",
        "long": "sent a data file that is refused: a path in its file table has 20000008 "
                "characters, over 4096",
        "escapes": "answered 500 (\\x1b[2J\\x1b]0;owned\\x07 hello)",
        "redirect": f"answered 302, a redirect to {agents.url}/good: not followed",
        "elsewhere": "collected data names /nowhere/srv/zzz_unknown.py, which matches no "
                     "local file",
        "lines": "sent line data while [run] branch = True in "
                 f"{project / '.apirc'} and other agents sent the other kind: not combined",
    }
    for kind, text in expected.items():
        named = [line for line in said if line.startswith(f"servercov: agent {urls[kind]}: ")]
        assert len(named) == 1 and text in named[0], (kind, named, said)
    assert status == 1
    assert said[-1].startswith("servercov: error: 9 of 10 agents failed: ")
    assert "collected 1 of 10 agents" in err
    assert "\x1b" not in err and "\x07" not in err
    assert max(len(line) for line in err.splitlines()) < 10_000
    assert peak_kib < MAX_RSS_MIB * 1024, f"collect's peak RSS: {peak_kib} KiB"
    measured = measured_lines(project / ".coverage", project / "webapp")
    assert lines_differ(measured, truth) == []
    assert (project / "coverage.json").exists()
    assert sorted(p.name for p in project.glob(".coverage.*")) == []
