"""``servercov serve``, ``snapshot``, ``stop`` and ``autosave``: a real gunicorn under real load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.support import (
    CORES,
    GUNICORN_4,
    LOAD_KINDS,
    RUN_TIMEOUT,
    Load,
    assert_no_leftovers,
    end_process,
    ground_truth,
    lines_differ,
    make_project,
    measured_lines,
    plan,
    python_env,
    run_servercov,
    running_serve,
    serve_state,
    servercov_command,
    servercov_lines,
    stop_serve,
    stray_data_files,
    use_core,
)

pytestmark = pytest.mark.timeout(240)


class Truth:
    """The in-process replay of a set of request kinds, each set replayed once."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.cache: dict[str, dict[str, set[int]]] = {}

    def __call__(self, requests: list[list[object]]) -> dict[str, set[int]]:
        key = json.dumps(requests)
        if key not in self.cache:
            self.cache[key] = ground_truth(self.project, requests)
        return self.cache[key]


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def contains(measured: dict[str, set[int]], expected: dict[str, set[int]]) -> list[str]:
    """Describe the lines of ``expected`` missing from ``measured``."""
    return [f"{name}: missing {sorted(lines - measured.get(name, set()))}"
            for name, lines in expected.items() if lines - measured.get(name, set())]


# The default core, and sys.monitoring where the interpreter offers it.
SNAPSHOT_CORES = ["auto"] + [core for core in CORES if core == "sysmon"]


@pytest.mark.parametrize("core", SNAPSHOT_CORES)
def test_snapshots_under_load_with_four_gunicorn_workers(tmp_path, core):
    project = make_project(tmp_path, servercov=GUNICORN_4)
    use_core(project, core)
    with running_serve(project) as serve:
        state = serve_state(project, serve)
        # The load runs until six snapshots are taken (bounded by RUN_TIMEOUT, not by
        # the clock), so a slow machine takes them all, just later.
        load = Load(state["url"], LOAD_KINDS, threads=6, seconds=RUN_TIMEOUT).start()
        snapshots = []  # (moment asked, lines measured)
        asked = load.started
        while len(snapshots) < 6:
            time.sleep(max(asked + 0.5 - time.monotonic(), 0))  # one every 0.5 s at most
            asked = time.monotonic()
            taken = run_servercov(project, "snapshot", timeout=60)
            assert taken.returncode == 0, taken.stderr
            assert "snapshot of 5 live server processes" in taken.stderr  # arbiter + 4
            snapshots.append((asked, measured_lines(project / ".coverage", project / "webapp")))
        load.stop_once_every_kind_is_sent()
        stopped = run_servercov(project, "stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert end_process(serve) == 0
    output = (project / "serve.log").read_text()
    total = json.loads((project / "coverage.json").read_text())["totals"]["percent_covered"]
    assert f"servercov: total coverage {total:.2f}%\n" in stopped.stderr  # as the serve's
    assert load.failures == [], load.failures[:5]
    truth = Truth(project)
    earlier: dict[str, set[int]] = {}
    for number, (asked, measured) in enumerate(snapshots):
        ran_before = load.kinds_done_before(asked)
        assert ran_before, "no request had been answered before the snapshot"
        assert contains(measured, truth(ran_before)) == [], f"snapshot {number}"
        assert contains(measured, earlier) == [], f"snapshot {number} lost lines of the one before"
        earlier = measured
    assert len(load.kinds_sent()) == len(LOAD_KINDS)
    final = measured_lines(project / ".coverage", project / "webapp")
    assert lines_differ(final, truth(load.kinds_sent())) == [], output
    assert "server stopped by SIGTERM" in output
    assert (project / "coverage.json").exists()
    assert stray_data_files(project) == []
    assert not (project / ".servercov").exists()
    assert_no_leftovers(project)


def test_serve_ended_by_ctrl_c_stops_in_order_and_reports(tmp_path):
    project = make_project(tmp_path)
    with running_serve(project) as serve:
        state = serve_state(project, serve)
        assert Path(project / ".servercov").stat().st_mode & 0o777 == 0o700
        assert Path(project / ".servercov" / "serve.json").stat().st_mode & 0o777 == 0o600
        load = Load(state["url"], plan(project), threads=2, seconds=0.5, unlock_every=0.01)
        load.start().wait()
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C on its terminal does
        assert end_process(serve) == 0
    output = (project / "serve.log").read_text()
    assert load.failures == []
    assert "servercov: SIGINT: stopping the server" in output
    assert "server stopped by shutdown_path" in output
    assert (project / "htmlcov" / "index.html").exists()
    measured = measured_lines(project / ".coverage", project / "webapp")
    assert lines_differ(measured, ground_truth(project, load.kinds_sent())) == []
    assert stray_data_files(project) == []
    assert not (project / ".servercov").exists()
    assert_no_leftovers(project)


@pytest.mark.parametrize("core", SNAPSHOT_CORES)
def test_autosave_keeps_what_ran_before_a_sigkill_of_everything(tmp_path, core):
    project = make_project(tmp_path, servercov=GUNICORN_4 + "autosave = 1\n")
    use_core(project, core)
    # First the routes no later run requests, then others: what ran more than
    # autosave seconds before the kill must be on disk.
    early = [LOAD_KINDS[7], LOAD_KINDS[1], LOAD_KINDS[3]]  # /never/, /items/1/, /echo/
    late = [LOAD_KINDS[6], LOAD_KINDS[2]]  # /once/b/, /items/2/
    with running_serve(project) as serve:
        state = serve_state(project, serve)
        first = Load(state["url"], early, threads=4, seconds=1.5, unlock_every=0.01)
        first.start().wait()
        second = Load(state["url"], late, threads=4, seconds=1.5, unlock_every=0.01)
        second.start().wait()
        # As a crash of the machine would: the serve first, so nothing is tidied up.
        os.killpg(serve.pid, signal.SIGKILL)
        os.killpg(state["server_pgid"], signal.SIGKILL)
        serve.wait(30)
    assert first.failures == [] and second.failures == []
    dumps = sorted(project.glob(".coverage.servercov-dump.pid*"))
    assert dumps, "no autosave dump on disk"
    on_disk: dict[str, set[int]] = {}
    for dump in dumps:  # every one is a whole, readable data file
        data = CoverageData(str(dump))
        data.read()
        for name in data.measured_files():
            relative = str(Path(name).relative_to(project / "webapp"))
            on_disk.setdefault(relative, set()).update(data.lines(name) or ())
    assert contains(on_disk, ground_truth(project, early)) == []
    # The stale state file is recognised, not obeyed.
    refused = run_servercov(project, "snapshot")
    assert refused.returncode == 1
    assert servercov_lines(refused.stderr) == [
        f"servercov: error: no servercov serve is running for {project / '.apirc'}"]
    # The next run starts clean: nothing of the killed run leaks into it.
    rerun = run_servercov(project, "run", "--", sys.executable, "-m", "unittest")
    assert rerun.returncode == 0, rerun.stderr
    measured = measured_lines(project / ".coverage", project / "webapp")
    assert lines_differ(measured, ground_truth(project, plan(project))) == []
    assert stray_data_files(project) == []
    assert sorted(p.name for p in (project / ".servercov").iterdir()) == ["serve.json"]
    assert_no_leftovers(project)


@pytest.mark.parametrize("subcommand", ["snapshot", "stop"])
@pytest.mark.parametrize("state", ["none", "stale", "garbled"])
def test_snapshot_and_stop_without_a_serve_are_one_error_line(tmp_path, subcommand, state):
    project = make_project(tmp_path)
    path = project / ".servercov" / "serve.json"
    if state != "none":
        path.parent.mkdir(mode=0o700)
        # This very process, with another start time: a pid reused since.
        path.write_text(json.dumps({
            "serve_pid": os.getpid(), "serve_started": 1, "server_pgid": os.getpid(),
            "url": "http://127.0.0.1:9", "rcfile": str(project / ".apirc"),
            "data_file": str(project / ".coverage")}) if state == "stale" else "{not json")
    run = run_servercov(project, subcommand)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"servercov: error: no servercov serve is running for {project / '.apirc'}"]


def test_a_new_serve_replaces_a_stale_state_file_and_refuses_a_second_serve(tmp_path):
    project = make_project(tmp_path)
    path = project / ".servercov" / "serve.json"
    path.parent.mkdir(mode=0o700)
    path.write_text(json.dumps({
        "serve_pid": os.getpid(), "serve_started": 1, "server_pgid": os.getpid(),
        "url": "http://127.0.0.1:9", "rcfile": str(project / ".apirc"),
        "data_file": str(project / ".coverage")}))
    with running_serve(project) as serve:
        deadline = time.monotonic() + 60
        while read_json(path).get("serve_pid") != serve.pid:
            assert serve.poll() is None and time.monotonic() < deadline, "the serve never started"
            time.sleep(0.05)
        second = run_servercov(project, "serve")
        assert second.returncode == 1
        assert f"a servercov serve is already running for {project / '.apirc'}" in second.stderr
        stop_serve(project, serve)
    assert "servercov: replacing" in (project / "serve.log").read_text()
    assert not path.exists()
    assert_no_leftovers(project)


def test_snapshots_asked_at_once_are_each_answered_and_stale_requests_dropped(tmp_path):
    """The serve takes the snapshots: three at once all get an answer; a dead asker's is dropped."""
    project = make_project(tmp_path)
    with running_serve(project) as serve:
        serve_state(project, serve)
        # A request of this very process with another start time: an asker gone since.
        stale = project / ".servercov" / f"snapshot.{os.getpid()}.request"
        stale.write_text("1\n")
        askers = [subprocess.Popen(servercov_command("snapshot"), cwd=project,
                                   env=python_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for asker in askers:
            _, err = asker.communicate(timeout=RUN_TIMEOUT)
            assert asker.returncode == 0, err
            assert re.search(r"^servercov: snapshot of [1-9]\d* live server proc", err, re.M), err
            assert "servercov: json report: " in err, err
        assert not stale.exists()
        assert list((project / ".servercov").glob("snapshot.*")) == []
        stop_serve(project, serve)
    assert_no_leftovers(project)
