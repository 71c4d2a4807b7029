"""``[servercov:NAME]`` sections against real processes: a real redis-server, a second service.

The ``sections`` scenario: an API (Flask on Werkzeug) whose item view calls
a second HTTP service (a bare WSGI app on Werkzeug, measured) and counts in
Redis (the Debian ``redis-server``, ``measured = false``), both started by
sections on free ports.  The combined data of the API and the second service
is compared line for line with the same requests replayed in one process,
where the second service runs in a thread and a Redis of its own answers.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.sections_support import assert_clean, assert_exact
from tests.support import (
    assert_no_leftovers,
    make_project,
    plan,
    processes_in,
    run_nose2,
    run_servercov,
    running_serve,
    serve_state,
    servercov_lines,
    start_nose2,
    stop_serve,
    wait_for_file,
)

pytestmark = pytest.mark.timeout(240)


def test_sections_start_in_order_stop_in_reverse_and_are_measured_exactly(tmp_path):
    project = make_project(tmp_path, "sections")
    run = run_nose2(project)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = servercov_lines(run.stderr)
    order = [line.split(":")[1].split(" started")[0].split(" stopped")[0].strip()
             for line in lines if " started: " in line or " stopped by " in line]
    assert order == ["section redis", "section inventory", "server",
                     "server", "section inventory", "section redis"], lines
    assert lines[0].endswith(", not measured"), lines
    assert "section redis stopped by SIGTERM" in run.stderr
    assert "server stopped by shutdown_path" in run.stderr
    seen = json.loads((project / "environment.json").read_text())
    assert seen["SERVERCOV_URL_INVENTORY"] == \
        f"http://127.0.0.1:{seen['SERVERCOV_PORT_INVENTORY']}"
    assert seen["SERVERCOV_URL_REDIS"] == f"http://127.0.0.1:{seen['SERVERCOV_PORT_REDIS']}"
    assert len({seen["SERVERCOV_URL"], seen["SERVERCOV_URL_INVENTORY"],
                seen["SERVERCOV_URL_REDIS"]}) == 3
    assert_exact(project, plan(project))
    assert_clean(project)


BROKEN = """
[servercov:broken]
command = {python} -c "print('connecting to the broker'); print('ConnectionError: refused'); raise SystemExit(3)"
ready_output = consuming
"""  # noqa: E501


def with_text_before_main(project: Path, text: str) -> None:
    rcfile = project / ".apirc"
    head, main = rcfile.read_text().split("[servercov]\n")
    rcfile.write_text(head + text.lstrip("\n") + "\n[servercov]\n" + main)


def test_a_section_failing_at_start_is_named_and_stops_what_started_before(tmp_path):
    project = make_project(tmp_path, "sections")
    with_text_before_main(project, BROKEN)  # after redis and inventory
    run = run_nose2(project)
    assert run.returncode != 0
    lines = servercov_lines(run.stderr)
    errors = [line for line in lines if line.startswith("servercov: error:")]
    assert len(errors) == 1, run.stderr
    assert errors[0].startswith("servercov: error: [servercov:broken] the command exited with "
                                "code 3"), run.stderr
    assert "| ConnectionError: refused" in run.stderr
    assert not any("server started" in line for line in lines)
    assert "Ran 0 tests" in run.stdout + run.stderr  # no test ran
    assert_no_leftovers(project)  # redis and inventory were stopped


def test_the_server_failing_at_start_stops_every_section(tmp_path):
    project = make_project(tmp_path, "sections")
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("serve.py {port}", "-c 'raise SystemExit(4)' "
                                                 "{port}"))
    run = run_nose2(project)
    assert run.returncode != 0
    assert "servercov: error: the server exited with code 4" in run.stderr, run.stderr
    assert "section inventory started" in run.stderr
    assert_no_leftovers(project)


def test_ctrl_c_in_the_middle_stops_everything_in_order_and_keeps_the_data(tmp_path):
    project = make_project(tmp_path, "sections")
    runner = start_nose2(project, SCENARIO="wait")
    try:
        wait_for_file(project / "waiting", process=runner)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(30)
    stops = [line for line in servercov_lines(output) if " stopped by " in line]
    assert [line.split(" stopped by ")[0] for line in stops] == [
        "servercov: server", "servercov: section inventory", "servercov: section redis"], output
    assert runner.returncode != 0
    assert_exact(project, plan(project))
    assert_clean(project)


@pytest.mark.parametrize("front_end", ["nose2", "servercov run"])
def test_a_measured_section_process_killed_is_named_with_its_section(tmp_path, front_end):
    project = make_project(tmp_path, "sections")
    (project / "test_kill.py").write_text(
        "import os, signal, unittest\n"
        "import requests\n"
        "class Kill(unittest.TestCase):\n"
        "    def test_kill(self):\n"
        "        url = os.environ['SERVERCOV_URL_INVENTORY']\n"
        "        requests.get(url + '/stock/4', timeout=10)\n"
        "        pid = int(open('inventory.pid').read())\n"
        "        os.kill(pid, signal.SIGKILL)\n")
    (project / "serve_inventory.py").write_text(
        "import os, sys\n"
        "from inventory import application\n"
        "from werkzeug.serving import run_simple\n"
        "open('inventory.pid', 'w').write(str(os.getpid()))\n"
        "run_simple('127.0.0.1', int(sys.argv[1]), application, threaded=True)\n")
    run = (run_nose2(project, "test_kill") if front_end == "nose2" else
           run_servercov(project, "run", "--", sys.executable, "-m", "unittest", "test_kill"))
    assert run.returncode == (1 if front_end == "nose2" else 3), run.stdout + run.stderr
    lost = [line for line in servercov_lines(run.stderr) if line.startswith("servercov: lost")]
    assert lost and lost[0].startswith("servercov: lost data: [servercov:inventory] pid "), \
        run.stderr
    assert "left no coverage data" in lost[0]
    assert "servercov: error: [servercov:inventory] exited with code -9 while the tests ran" \
        in run.stderr, run.stderr
    assert_no_leftovers(project)


def test_a_snapshot_holds_every_measured_section_exactly(tmp_path):
    project = make_project(tmp_path, "sections")
    with running_serve(project) as serve:
        url = serve_state(project, serve)["url"]
        with urllib.request.urlopen(url + "/items/1/", timeout=10) as answer:
            assert answer.status == 200
        snapshot = run_servercov(project, "snapshot")
        assert snapshot.returncode == 0, snapshot.stderr
        assert "snapshot of 2 live server processes" in snapshot.stderr, snapshot.stderr
        # What the server (its ready_path included) and the inventory ran so far, no more.
        assert_exact(project, [["GET", "/health/", None, 200], ["GET", "/items/1/", None, 200]],
                     inventory_paths=())
        stop_serve(project, serve)
    log = (project / "serve.log").read_text()
    assert "section inventory stopped by SIGTERM" in log and "section redis stopped" in log
    assert_no_leftovers(project)


PROBE = """
[servercov:{name}]
command = {{python}} -c "import os, json; json.dump(dict(os.environ), open('{name}.json', 'w'))"
measured = {measured}
env =
    BACK = {{inventory_url}}/x
"""


def test_a_section_gets_its_own_env_and_coverage_only_if_measured(tmp_path):
    project = make_project(tmp_path, "sections")
    with_text_before_main(project, PROBE.format(name="plain", measured="false")
                          + PROBE.format(name="measured", measured="true"))
    run = run_nose2(project, "test_plan.PlanTest.test_plan")
    assert run.returncode == 0, run.stderr
    plain = json.loads((project / "plain.json").read_text())
    assert not [name for name in plain if name.startswith(("SERVERCOV_", "COVERAGE_"))]
    assert "bootstrap" not in plain.get("PYTHONPATH", "")
    measured = json.loads((project / "measured.json").read_text())
    assert measured["COVERAGE_PROCESS_START"] == str(project / ".apirc")
    assert "bootstrap" in measured["PYTHONPATH"] and measured["SERVERCOV_TOKEN"]
    for env in (plain, measured):
        assert env["BACK"].startswith("http://127.0.0.1:") and env["BACK"].endswith("/x")
        assert "INVENTORY_URL" not in env  # the main server's env is its own
    assert_no_leftovers(project)


def test_bad_sections_are_refused_before_anything_starts(tmp_path):
    project = make_project(tmp_path, "sections")
    with_text_before_main(project, "[servercov:worker]\ncommand = {python} -m w {cache_url}\n")
    run = run_nose2(project)
    assert run.returncode != 0
    lines = servercov_lines(run.stderr)
    assert lines == [f"servercov: error: {project / '.apirc'}: [servercov:worker] command: "
                     "{cache_url} names no section: expected [servercov:cache] in the file "
                     "(sections: redis, inventory, worker)"], run.stderr
    assert_no_leftovers(project)  # not even Redis was started


def test_ctrl_c_while_a_section_starts_stops_the_sections_already_running(tmp_path):
    project = make_project(tmp_path, "sections")
    with_text_before_main(project, """
[servercov:slow]
command = {python} -c "open('slow-started', 'w').close(); import time; time.sleep(120)"
ready_output = never printed
startup_timeout = 600
""")
    runner = start_nose2(project)
    try:
        wait_for_file(project / "slow-started", process=runner)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(30)
    assert runner.returncode != 0, output
    assert "section inventory started" in output
    assert "server started" not in output
    assert_no_leftovers(project)  # redis, inventory and the slow one


def test_a_runner_killed_by_sigkill_leaves_no_section_running(tmp_path):
    project = make_project(tmp_path, "sections")
    runner = start_nose2(project, SCENARIO="wait")
    try:
        wait_for_file(project / "waiting", process=runner)
        assert len(processes_in(project)) >= 4  # the runner, Redis, the inventory, the server
        runner.kill()  # no stop, no atexit: the keepers end every group
        runner.wait(30)
        deadline = time.monotonic() + 60
        while processes_in(project) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(30)
    assert_no_leftovers(project)
