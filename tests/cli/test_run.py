"""``servercov run`` end to end: real test commands against a real server, real data files."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys

import pytest

from tests.support import (
    CORES,
    assert_exact,
    assert_no_leftovers,
    make_project,
    plan,
    python_env,
    run_servercov,
    servercov_command,
    servercov_lines,
    stray_data_files,
    use_core,
    wait_for_file,
)

pytestmark = pytest.mark.timeout(180)

CURL_SCRIPT = """#!/bin/sh
# A seed-style smoke test: curl calls against the server servercov started.
set -e
curl -sf "$SERVERCOV_URL/health/" > /dev/null
curl -sf "$SERVERCOV_URL/items/1/" > /dev/null
curl -sf "$SERVERCOV_URL/items/2/" > /dev/null
test "$(curl -s -o /dev/null -w '%{http_code}' "$SERVERCOV_URL/items/1000/")" = 404
curl -sf -X POST -H 'Content-Type: application/json' -d '{"a": 1}' \
    "$SERVERCOV_URL/echo/" > /dev/null
curl -sf "$SERVERCOV_URL/once/a/" > /dev/null
test "$(curl -s -o /dev/null -w '%{http_code}' "$SERVERCOV_URL/missing/")" = 404
"""


def check_clean(project):
    assert stray_data_files(project) == []
    assert not (project / ".servercov").exists()
    assert_no_leftovers(project)


def test_run_with_a_passing_suite(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", sys.executable, "-m", "unittest", "-v")
    assert run.returncode == 0, run.stderr
    lines = servercov_lines(run.stderr)
    assert lines[0].startswith("servercov: server started: pid ")
    assert any("server stopped by shutdown_path" in line for line in lines)
    assert "Ran 2 tests" in run.stderr and "OK" in run.stderr
    assert "webapp/__init__.py" in run.stdout  # the term-missing report
    assert (project / "htmlcov" / "index.html").exists()
    assert_exact(project, plan(project))
    check_clean(project)


def test_run_with_a_failing_suite_exits_1_and_still_reports_everything(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", sys.executable, "-m", "unittest",
                        SCENARIO="fail")
    assert run.returncode == 1
    assert "this test fails on purpose" in run.stderr
    assert (project / "htmlcov" / "index.html").exists()
    assert_exact(project, plan(project))
    check_clean(project)


def test_run_exits_with_the_commands_status(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert run.returncode == 7, run.stderr
    assert (project / "coverage.json").exists()  # the server's start-up was measured
    check_clean(project)


def test_run_of_a_command_that_does_not_exist_starts_nothing(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", "./no-such-test-runner", "-v")
    assert run.returncode == 127
    assert servercov_lines(run.stderr) == [
        "servercov: error: cannot run './no-such-test-runner': no such command "
        "(or not executable)"]
    assert "Traceback" not in run.stderr
    assert not (project / ".coverage").exists()
    check_clean(project)


@pytest.mark.parametrize("runner", ["unittest discover", "nose2", "pytest", "curl script"])
def test_run_works_with_any_test_command(tmp_path, runner):
    project = make_project(tmp_path)
    requests = plan(project)
    if runner == "unittest discover":
        command = [sys.executable, "-m", "unittest", "discover", "-s", "."]
    elif runner == "nose2":  # an old-style suite run by its own runner, without the plugin
        command = [sys.executable, "-m", "nose2"]
    elif runner == "pytest":
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plan.py"]
    else:
        if shutil.which("curl") is None:
            pytest.fail("curl is not installed: CI must install it (apt-get install curl)")
        script = project / "smoke.sh"
        script.write_text(CURL_SCRIPT)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        command = ["./smoke.sh"]  # the same requests as the plan
    run = run_servercov(project, "run", "--", *command)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_exact(project, requests)
    check_clean(project)


def test_run_fails_when_fail_under_is_not_met(tmp_path):
    project = make_project(tmp_path)
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text() + "\n[report]\nfail_under = 99\n")
    run = run_servercov(project, "run", "--", sys.executable, "-m", "unittest")
    assert run.returncode == 2
    assert "is under fail_under 99" in run.stderr


def test_run_of_a_server_that_cannot_start_is_one_error_line(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} -c "print('KeyError: DATABASE_URL'); raise SystemExit(3)"
        """)
    run = run_servercov(project, "run", "--", sys.executable, "-m", "unittest")
    assert run.returncode == 1
    assert servercov_lines(run.stderr)[0].startswith(
        "servercov: error: the server exited with code 3")
    assert "Ran " not in run.stderr  # the command never ran
    assert "Traceback" not in run.stderr
    assert_no_leftovers(project)


@pytest.mark.parametrize("subcommand", [None, "run", "serve", "snapshot", "stop"])
def test_help_shows_an_example(tmp_path, subcommand):
    run = run_servercov(tmp_path, *[subcommand] * (subcommand is not None), "--help")
    assert run.returncode == 0
    assert "example" in run.stdout
    assert "servercov " + (subcommand or "run") in run.stdout.split("example")[1]


def test_the_console_script_is_the_same_command(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "servercov")
    if not os.path.exists(script):
        pytest.skip("the package is not installed with its console script")
    run = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "servercov run" in run.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_run_ends_the_command_and_stops_the_server_in_order(tmp_path, sig):
    project = make_project(tmp_path)
    runner = subprocess.Popen(
        servercov_command("run", "--", sys.executable, "-m", "unittest"), cwd=project,
        env=python_env(SCENARIO="wait"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        wait_for_file(project / "waiting", process=runner)
        runner.send_signal(sig)  # to servercov alone: it passes the signal on
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode != 0
    assert "server stopped by shutdown_path" in output
    assert_exact(project, [*plan(project), ["GET", "/once/b/", None, 200]])
    check_clean(project)


@pytest.mark.parametrize("core", ["auto"] + [core for core in CORES if core == "sysmon"])
def test_run_with_autosave_is_exact_and_leaves_no_dump_behind(tmp_path, core):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        autosave = 0.2
        reports = json
        """)
    use_core(project, core)
    test_then_idle = f"{sys.executable} -m unittest && sleep 1"  # time for a few autosaves
    run = run_servercov(project, "run", "--", "sh", "-c", test_then_idle)
    assert run.returncode == 0, run.stderr
    assert "combined 2 data files" in run.stderr  # the process's own, and its autosave dump
    assert_exact(project, plan(project))
    check_clean(project)
