"""The save exchange on real processes in a group of their own and a real control folder.

The measured side is either the real in-server code (started by the
bootstrap, as in a server) or a small stdlib program that speaks the
protocol, registering, sleeping on its wake FIFO and answering as told, so
that every kind of answer can be had on demand.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from nose2_servercov import procfs, protocol
from nose2_servercov.engine import data
from nose2_servercov.engine.data import exchange
from tests.support import REPO, python_env

# Registers, then answers each new request as argv[2] says: "dumped", "empty", a bare
# number ("bare"), or never ("silent").  Like the in-server thread, it looks at the
# request when woken, and every second anyway.
ANSWERER = """
import os, select, sys
sys.path.insert(0, sys.argv[3])
from nose2_servercov import protocol
control, reply, pid = sys.argv[1], sys.argv[2], os.getpid()
fifo = os.path.join(control, protocol.wake_file(pid))
os.mkfifo(fifo, 0o600)
wake = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
def answer(text):
    path = os.path.join(control, protocol.answer_file(pid))
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
answer(protocol.REGISTERED_ANSWER)
answered = protocol.REGISTERED_ANSWER
while True:
    if select.select([wake], [], [], 1.0)[0]:
        os.read(wake, 4096)
    try:
        with open(os.path.join(control, protocol.REQUEST_FILE)) as f:
            generation = f.read().strip()
    except FileNotFoundError:
        continue
    if reply != "silent" and generation != answered and protocol.is_generation(generation):
        answer(generation if reply == "bare"
               else protocol.format_answer(generation, dumped=reply == "dumped"))
        answered = generation
"""


def answerer(control: Path, reply: str) -> str:
    """Return a shell command that runs one answerer."""
    return shlex.join([sys.executable, "-c", ANSWERER, str(control), reply, str(REPO)])


def start_group(*commands: str) -> subprocess.Popen[bytes]:
    """Start ``commands`` in the background of one shell that then sleeps: one group."""
    script = "".join(f"{command} & " for command in commands) + "exec sleep 120"
    return subprocess.Popen(["sh", "-c", script], env=python_env(), start_new_session=True)


def wait_registered(control: Path, count: int) -> dict[int, str]:
    """Wait until ``count`` answerers have registered; return what each will answer, by pid."""
    deadline = time.monotonic() + 60
    while True:
        pids = [pid for path in control.iterdir()
                if (pid := protocol.pid_of(path.name, protocol.answer_file)) is not None]
        if len(pids) >= count:
            return {pid: (procfs.command_line(pid) or [""] * 5)[4] for pid in pids}
        assert time.monotonic() < deadline, f"{len(pids)} of {count} registered"
        time.sleep(0.02)


def wait_members(pgid: int, count: int) -> list[int]:
    """Wait until group ``pgid`` has ``count`` processes; return them."""
    deadline = time.monotonic() + 60
    while len(members := procfs.group_members(pgid)) < count:
        assert time.monotonic() < deadline, members
        time.sleep(0.02)
    return members


@pytest.fixture
def control(tmp_path: Path) -> Path:
    folder = tmp_path / "control"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def groups():
    started: list[subprocess.Popen[bytes]] = []
    yield started.append
    for group in started:
        try:
            os.killpg(group.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        group.wait(10)


def test_each_process_says_whether_it_dumped_or_had_measured_nothing(control, groups):
    group = start_group(answerer(control, "dumped"), answerer(control, "empty"),
                        answerer(control, "bare"))
    groups(group)
    will_answer = wait_registered(control, 3)
    answers = exchange.ask_for_dumps(control, group.pid, timeout=60)
    assert answers.generation == 1
    assert (control / protocol.REQUEST_FILE).read_text() == "1"
    assert {pid: will_answer[pid] for pid in answers.dumped} == {
        pid: reply for pid, reply in will_answer.items() if reply in ("dumped", "bare")}
    assert [will_answer[pid] for pid in answers.empty] == ["empty"]
    assert answers.late == frozenset()
    assert answers.unregistered == {group.pid}  # the shell, now sleep: nothing measured
    again = exchange.ask_for_dumps(control, group.pid, timeout=60)
    assert again == replace(answers, generation=2)


def test_stale_answers_never_count_as_fresh_saves(control, groups):
    # Answers above any request, and no request file: left by an earlier run whose
    # request file is gone, or by processes whose pids came back.
    group = start_group("sleep 120", answerer(control, "dumped"))
    groups(group)
    (live,) = wait_registered(control, 1)
    (sleeper,) = set(wait_members(group.pid, 3)) - {group.pid, live}
    (control / protocol.answer_file(group.pid)).write_text("41 empty")
    (control / protocol.answer_file(sleeper)).write_text("40")
    (control / protocol.answer_file(live)).write_text(protocol.format_answer(42, dumped=True))
    answers, notes = exchange.save_before_signal(control, group.pid, timeout=1.0)
    assert answers.generation == 43
    assert answers.dumped == {live}  # it answered this very request
    assert answers.empty == frozenset()
    assert answers.late == {group.pid, sleeper}  # their old answers are no saves
    assert notes == [f"server processes {sorted(answers.late)} did not save their data within "
                     "1 s of being asked, before the stop signal"]


def test_a_malformed_request_is_removed_and_refused(control, groups):
    group = start_group(answerer(control, "dumped"))
    groups(group)
    (live,) = wait_registered(control, 1)
    request = control / protocol.REQUEST_FILE
    request.write_text("-1; rm -rf /")
    with pytest.raises(exchange.MalformedRequest) as refused:
        exchange.ask_for_dumps(control, group.pid, timeout=60)
    assert str(refused.value).startswith(f"{request} held a malformed snapshot request "
                                         "'-1; rm -rf /' (servercov writes a decimal number")
    assert not request.exists()
    # Before a stop signal nothing is refused: the request is removed, and asked anew.
    request.write_text("garbage")
    answers, notes = exchange.save_before_signal(control, group.pid, timeout=60)
    assert answers.dumped == {live}
    assert notes == [f"{request} held a malformed save request 'garbage', which servercov "
                     "never writes: removed"]


MEASURED = """
import time
import work
work.double(2)
open("ready", "w").close()
time.sleep(120)
"""


def test_a_measured_server_process_dumps_what_it_ran(tmp_path, control, groups):
    (tmp_path / "work.py").write_text("def double(n):\n    return 2 * n\n")
    rcfile = tmp_path / ".apirc"
    rcfile.write_text(f"[run]\nparallel = True\nsource = {tmp_path}\n")
    settings = data.server_settings(rcfile)
    env = python_env(
        PYTHONPATH=os.pathsep.join([str(REPO / "nose2_servercov" / "bootstrap"), str(tmp_path)]),
        COVERAGE_PROCESS_START=str(rcfile), COVERAGE_PROCESS_CONFIG=settings.serialize(),
        SERVERCOV_CONTROL=str(control))
    server = subprocess.Popen([sys.executable, "-c", MEASURED], cwd=tmp_path, env=env,
                              start_new_session=True)
    groups(server)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    answers = exchange.ask_for_dumps(control, server.pid, timeout=60)
    assert answers == exchange.Answers(answers.generation, dumped=frozenset({server.pid}))
    dump = Path(f"{settings.data_file}{protocol.DUMP_INFIX}{server.pid}")
    assert dump.exists()
