"""No orphans, no leftovers, no mixing: SIGKILLed runners, leftover servers, concurrent runs.

Every run here carries a marker in its environment (``ORPHAN_MARKER``); the
server, its workers, the test command and servercov's keeper inherit it, so
scanning ``/proc/*/environ`` for it finds whatever a run left behind.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import (
    assert_exact,
    assert_no_leftovers,
    ground_truth,
    lines_differ,
    make_project,
    marked,
    measured_lines,
    plan,
    python_env,
    run_servercov,
    running_serve,
    serve_state,
    servercov_command,
    servercov_lines,
    start_nose2,
    start_serve,
    stop_serve,
    stray_data_files,
    wait_for_file,
)

pytestmark = pytest.mark.timeout(300)

ORPHAN_GRACE = 3.0  # seconds after the runner's SIGKILL by which nothing of it may be alive


def wait_none_marked(marker: str, timeout: float) -> float:
    """Wait until no process carries ``marker``; return how long it took, fail at ``timeout``."""
    started = time.monotonic()
    while True:
        left = marked(marker)
        elapsed = time.monotonic() - started
        if not left:
            return elapsed
        if elapsed > timeout:
            for pid in left:
                with_suppress_kill(pid)
            raise AssertionError(f"alive {timeout:g} s after the runner's SIGKILL: {left}")
        time.sleep(0.05)


def with_suppress_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def get(url: str, path: str) -> int:
    parts = url.split("//", 1)[1]
    host, port = parts.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def clean_rerun(project: Path) -> subprocess.CompletedProcess[str]:
    """Run the plan again under ``servercov run``: it must be exact, without /once/b/."""
    rerun = run_servercov(project, "run", "--", sys.executable, "-m", "unittest")
    assert rerun.returncode == 0, rerun.stderr
    assert_exact(project, plan(project))  # /once/b/ is only in the killed run
    assert stray_data_files(project) == []
    return rerun


@pytest.mark.parametrize("runner", ["nose2", "run", "serve", "run's whole group"])
def test_sigkill_of_the_runner_leaves_no_process_and_the_next_run_is_clean(tmp_path, runner):
    """SIGKILL of the runner's pid; for the last case, of its whole process group, as a CI
    runner cancelling a job does (the test command dies with it; the server must too)."""
    project = make_project(tmp_path)
    marker = uuid.uuid4().hex
    if runner == "serve":
        started = start_serve(project, ORPHAN_MARKER=marker)
        state = serve_state(project, started)
        assert get(state["url"], "/once/b/") == 200
    else:
        if runner == "nose2":
            started = start_nose2(project, SCENARIO="wait", ORPHAN_MARKER=marker)
        else:
            started = subprocess.Popen(
                servercov_command("run", "--", sys.executable, "-m", "unittest"), cwd=project,
                env=python_env(SCENARIO="wait", ORPHAN_MARKER=marker),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=runner != "run")
        wait_for_file(project / "waiting", process=started)  # /once/b/ was answered
    try:
        assert len(marked(marker)) >= 3  # the runner, its keeper, the server (and command)
        if runner == "run's whole group":
            os.killpg(started.pid, signal.SIGKILL)
        else:
            started.send_signal(signal.SIGKILL)
        took = wait_none_marked(marker, ORPHAN_GRACE)
    finally:
        if started.poll() is None:
            started.kill()
        started.wait(30)
    output = (project / "serve.log").read_text() if runner == "serve" else started.stdout.read()
    assert f"servercov: pid {started.pid}, which started the server (process group " in output
    if runner in ("run", "run's whole group"):
        assert ") and the test command (pid " in output, output
    assert "is gone: stopped by SIGTERM in " in output, output
    print(f"{runner}: nothing left {took:.2f} s after the SIGKILL")
    rerun = clean_rerun(project)
    assert "did not end in order (killed?); its data files are erased" in rerun.stderr
    assert_no_leftovers(project)


def keeper_of(marker: str) -> int:
    keepers = [pid for pid, command in marked(marker).items() if "keeper.py" in command]
    assert len(keepers) == 1, marked(marker)
    return keepers[0]


def test_a_server_left_by_an_earlier_run_is_stopped_by_the_next_one(tmp_path):
    project = make_project(tmp_path)
    marker = uuid.uuid4().hex
    first = start_nose2(project, SCENARIO="wait", ORPHAN_MARKER=marker)
    try:
        wait_for_file(project / "waiting", process=first)
        # As an OOM killer or `kill -9` of everything would: keeper and runner at once.
        os.kill(keeper_of(marker), signal.SIGKILL)
        first.kill()
        first.wait(30)
        test_process = int((project / "waiting").read_text())
        time.sleep(0.5)  # long enough for a keeper to have acted, were one left
        left = marked(marker)
        left.pop(test_process, None)  # nose2 runs the tests in its own process
        assert len(left) == 1, left  # the server, alone now
        (server,) = left
        state = json.loads((project / ".servercov" / "run.json").read_text())
        assert state["server_pgid"] == server
        rerun = clean_rerun(project)
    finally:
        for pid in marked(marker):
            with_suppress_kill(pid)
    assert not marked(marker)
    line = [line for line in servercov_lines(rerun.stderr) if "earlier run" in line]
    assert len(line) == 1, rerun.stderr
    assert f"the server of an earlier run (pid {first.pid}: " in line[0]
    assert f"process group {server}, was left running: stopped by SIGTERM in" in line[0]
    assert line[0].endswith("its data files are erased, not reported")
    assert_no_leftovers(project)


def test_a_recorded_server_whose_pid_was_reused_is_never_signalled(tmp_path):
    project = make_project(tmp_path)
    (project / ".servercov").mkdir(mode=0o700)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        # A run killed long ago recorded a server whose pid (and group) is now `sleep`'s.
        (project / ".servercov" / "run.json").write_text(json.dumps({
            "runner_pid": 999999, "runner_started": 1, "runner_command": "nose2",
            "server_pgid": other.pid, "server_started": 1,
            "command_pid": other.pid, "command_started": 1}))
        rerun = clean_rerun(project)
        assert other.poll() is None, "a process whose pid was recorded was signalled"
    finally:
        other.kill()
        other.wait(10)
    assert ("servercov: the server of an earlier run (pid 999999: nose2), process group "
            f"{other.pid}, did not end in order (killed?)") in rerun.stderr
    assert not (project / ".servercov").exists()


def test_two_runs_at_once_in_one_folder_never_mix_twenty_rounds(tmp_path):
    """The documented behaviour: the second run is refused in one line, or waits its turn."""
    project = make_project(tmp_path)
    argv = servercov_command("run", "--", sys.executable, "-m", "unittest")
    truth = ground_truth(project, plan(project))
    refusals = 0
    for number in range(20):
        runs = [subprocess.Popen(argv, cwd=project, env=python_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(run.pid, *run.communicate(timeout=120), run.returncode) for run in runs]
        codes = sorted(code for _, _, _, code in results)
        assert codes in ([0, 0], [0, 1]), f"round {number}: {results}"
        for _, out, err, code in results:
            assert "Traceback" not in err and "no such table" not in err, err
            if code == 1:
                refusals += 1
                (other,) = [p for p, _, _, c in results if c == 0]
                assert out == ""
                assert err.splitlines() == [
                    f"servercov: error: another servercov run (pid {other}: {' '.join(argv)}) "
                    f"is measuring into {project}; two runs at once there would mix or erase "
                    "each other's data: wait until it ends, or give this run a [run] "
                    "data_file in another folder"], f"round {number}"
        # What the winner combined is exactly its own requests, whatever the other did.
        measured = measured_lines(project / ".coverage", project / "webapp")
        assert lines_differ(measured, truth) == [], f"round {number}"
        assert stray_data_files(project) == []
        assert not (project / ".servercov").exists()
    print(f"{refusals} of 20 rounds had one run refused")
    assert refusals >= 10  # started together, they overlap: the refusal is what is tested
    assert_no_leftovers(project)


def test_a_malformed_snapshot_request_is_ignored_and_the_snapshot_fails(tmp_path):
    project = make_project(tmp_path)
    with running_serve(project) as serve:
        state = serve_state(project, serve)
        assert get(state["url"], "/items/1/") == 200
        taken = run_servercov(project, "snapshot")
        assert taken.returncode == 0, taken.stderr
        request = project / ".servercov" / "request"
        request.write_text("-1; rm -rf /")
        refused = run_servercov(project, "snapshot")
        assert refused.returncode == 1
        assert servercov_lines(refused.stderr) == [
            f"servercov: error: {request} held a malformed snapshot request '-1; rm -rf /' "
            "(servercov writes a decimal number there): the server processes ignored it and "
            "no report was written; it is removed, so the next snapshot works"]
        # The channel is clean again: the next snapshot waits for the server and is whole.
        assert get(state["url"], "/once/b/") == 200
        again = run_servercov(project, "snapshot")
        assert again.returncode == 0, again.stderr
        assert "snapshot of 1 live server process" in again.stderr
        measured = measured_lines(project / ".coverage", project / "webapp")
        once_b = [n for n, text in enumerate(
            (project / "webapp" / "__init__.py").read_text().splitlines(), 1)
            if text.strip() == 'return "b"']
        assert set(once_b) <= measured["__init__.py"]
        assert "pid" in (project / "serve.log").read_text()
        stop_serve(project, serve)
    assert_no_leftovers(project)


@pytest.mark.parametrize("subcommand", ["stop", "snapshot"])
def test_a_forged_serve_state_never_gets_another_process_signalled(tmp_path, subcommand):
    project = make_project(tmp_path)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with open(f"/proc/{other.pid}/stat", "rb") as f:
            started = int(f.read().rsplit(b")", 1)[1].split()[19])
        path = project / ".servercov" / "serve.json"
        path.parent.mkdir(mode=0o700)
        # The right pid and start time: only the command line tells it is no serve.
        path.write_text(json.dumps({
            "serve_pid": other.pid, "serve_started": started, "server_pgid": other.pid,
            "url": "http://127.0.0.1:9", "rcfile": str(project / ".apirc"),
            "data_file": str(project / ".coverage")}))
        run = run_servercov(project, subcommand)
        time.sleep(0.2)
        assert other.poll() is None, "the forged state's process was signalled"
    finally:
        other.kill()
        other.wait(10)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"servercov: error: {path} names pid {other.pid} (sleep 60), which is not a servercov "
        f"serve for {project / '.apirc'}: nothing was signalled; remove the file if no serve "
        "runs"]
