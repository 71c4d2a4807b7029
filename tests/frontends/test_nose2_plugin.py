"""``nose2 --with-servercov`` end to end: real nose2, real Werkzeug server, real data files."""

from __future__ import annotations

import subprocess
import sys

import pytest
from coverage import CoverageData

from tests.support import (
    ListeningSocket,
    assert_exact,
    assert_no_leftovers,
    ground_truth,
    make_project,
    measured_lines,
    plan,
    python_env,
    run_nose2,
    servercov_lines,
    stray_data_files,
)

pytestmark = pytest.mark.timeout(180)


def test_stale_data_files_never_leak_into_the_report(tmp_path):
    project = make_project(tmp_path)
    # A data file of an earlier run that executed the route nobody requests now.
    truth_of_never = ground_truth(project, [["GET", "/never/", None, 200]])
    assert truth_of_never
    (project / ".truth").rename(project / ".coverage.oldhost.1234.567890")
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    assert_exact(project, plan(project))


def test_shutdown_path_answering_404_falls_back_to_the_signal_and_keeps_the_data(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /no/such/route/
        reports = term
        """)
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    assert "/no/such/route/ answered 404" in run.stderr
    assert "server stopped by SIGTERM" in run.stderr
    assert_exact(project, plan(project))
    assert_no_leftovers(project)


def test_a_server_without_shutdown_path_is_stopped_by_signal(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        reports = term
        """)
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    assert "server stopped by SIGTERM" in run.stderr
    assert_exact(project, plan(project))
    assert_no_leftovers(project)


def test_a_server_that_ignores_every_polite_stop_is_killed_its_data_saved_first(tmp_path):
    """Every measured process saves on request before the stop signal: a KILL loses nothing."""
    project = make_project(tmp_path, servercov="""
        command = {python} -c "import signal, runpy, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); sys.argv = ['serve.py', '{port}']; runpy.run_path('serve.py')"
        ready_path = /health/
        shutdown_timeout = 0.5
        reports = term
        """)  # noqa: E501
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    assert "server stopped by SIGKILL" in run.stderr
    assert "SIGTERM: the server was still running after 0.5 s" in run.stderr
    assert "lost data" not in run.stderr
    assert_exact(project, plan(project))
    assert_no_leftovers(project)


def test_a_server_crashing_mid_run_fails_the_run_and_keeps_what_it_ran(tmp_path):
    project = make_project(tmp_path)
    run = run_nose2(project, SCENARIO="crash")
    assert run.returncode == 1
    assert "the server exited with code 7 while the tests ran" in run.stderr
    requests = [*plan(project), ["GET", "/once/b/", None, 200], ["GET", "/crash/", None, 500]]
    assert_exact(project, requests)
    assert_no_leftovers(project)


@pytest.mark.parametrize(("servercov", "expected"), [
    ("command = {python} serve.py {port}\nport = abc\n",
     "[servercov] port: expected a whole number from 0 to 65535 (0 = a free port), got 'abc'"),
    ("command = {python} serve.py {port}\nreports = html, pdf\n",
     "[servercov] reports: expected report names among term, term-missing, html, xml, json, "
     "lcov, got 'html, pdf'"),
    ("command = {python} serve.py {port}\nshutdown_timout = 3\n",
     "[servercov] shutdown_timout: unknown key"),
    ("ready_path = /health/\n", "[servercov] command: expected how to start the server"),
])
def test_a_bad_config_value_is_one_line_and_starts_nothing(tmp_path, servercov, expected):
    project = make_project(tmp_path, servercov=servercov)
    run = run_nose2(project)
    assert run.returncode == 1
    errors = servercov_lines(run.stderr)
    assert len(errors) == 1, run.stderr
    assert errors[0].startswith(f"servercov: error: {project / '.apirc'}: ")
    assert expected in errors[0]
    assert "Traceback" not in run.stderr
    assert "Ran 0 tests" in run.stderr
    assert_no_leftovers(project)


def test_a_missing_rcfile_is_named(tmp_path):
    project = make_project(tmp_path)
    run = run_nose2(project, "--servercov-rcfile", "nope.ini")
    assert run.returncode == 1
    assert servercov_lines(run.stderr) == [
        "servercov: error: nope.ini: the rcfile does not exist (expected a coverage config "
        "file with a [servercov] section)"]


def test_nose2_config_section_wins_over_the_rcfile(tmp_path):
    project = make_project(tmp_path)
    (project / "unittest.cfg").write_text(
        "[unittest]\nplugins = nose2_servercov\n[servercov]\nreports = xml\n")
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    assert (project / "coverage.xml").exists()
    assert not (project / "htmlcov").exists()


def test_a_command_that_does_not_exist(tmp_path):
    project = make_project(tmp_path, servercov="command = ./no-such-server --port {port}\n")
    run = run_nose2(project)
    assert run.returncode == 1
    assert "cannot start the server command './no-such-server'" in run.stderr
    assert "No such file or directory" in run.stderr
    assert "Ran 0 tests" in run.stderr


def test_a_server_that_never_gets_ready_times_out_and_is_stopped(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} -c "import time; print('warming up the cache', flush=True); time.sleep(120)" {port}
        startup_timeout = 1
        """)  # noqa: E501
    run = run_nose2(project)
    assert run.returncode == 1
    assert "the server was not ready after 1 s (startup_timeout): waited for port" in run.stderr
    assert "| warming up the cache" in run.stderr
    assert "Ran 0 tests" in run.stderr
    assert_no_leftovers(project)


def test_a_port_taken_by_another_program_is_refused_before_start(tmp_path):
    taken = ListeningSocket()
    try:
        project = make_project(tmp_path, servercov=f"""
            command = {{python}} serve.py {{port}}
            port = {taken.port}
            """)
        run = run_nose2(project)
    finally:
        taken.close()
    assert run.returncode == 1
    assert f"port {taken.port} on 127.0.0.1 is in use by another program" in run.stderr
    assert "Ran 0 tests" in run.stderr


def test_the_sample_api_main_job(tmp_path):
    """README command (a) on a copy of the repository's sample."""
    from tests.support import REPO
    project = tmp_path / "repo"
    project.mkdir()
    for name in (".apirc", "unittest.cfg"):
        (project / name).write_text((REPO / name).read_text())
    subprocess.run(["cp", "-r", str(REPO / "sample_api"), str(REPO / "tests"), str(project)],
                   check=True)
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    index = project / "cover" / "index.html"
    assert index.exists()
    data = measured_lines(project / ".coverage", project / "sample_api")
    views = (project / "sample_api" / "views.py").read_text().splitlines()
    export = next(i for i, line in enumerate(views, 1) if "def export_user" in line)
    assert export + 1 not in data["views.py"]  # the route no test calls
    assert any("return" in views[n - 1] for n in data["views.py"])
    assert_no_leftovers(project)


def test_contexts_test_records_lines_under_the_test_that_sent_the_request(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        contexts = test
        reports = html
        """)
    run = run_nose2(project, SCENARIO="once")
    assert run.returncode == 0, run.stderr
    assert_exact(project, [*plan(project), ["GET", "/once/b/", None, 200]])
    data = CoverageData(str(project / ".coverage"))
    data.read()
    source = (project / "webapp" / "__init__.py").read_text().splitlines()
    once_b = source.index('        return "b"') + 1
    item = source.index("        if number > 100:") + 1
    by_line = data.contexts_by_lineno(str(project / "webapp" / "__init__.py"))
    assert by_line[once_b] == ["test_plan.PlanTest.test_scenario_extra"]
    assert by_line[item] == ["test_plan.PlanTest.test_plan"]
    page = next((project / "htmlcov").glob("*___init___py.html")).read_text()
    assert "test_plan.PlanTest.test_scenario_extra" in page  # the report shows the contexts


def test_a_runner_measured_by_coverage_run_is_combined_too(tmp_path):
    project = make_project(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--rcfile=.apirc", "-m", "nose2",
         "--with-servercov"], cwd=project, env=python_env(SCENARIO="inprocess"),
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "saved the test runner's own coverage data" in run.stderr
    assert_exact(project, [*plan(project), ["GET", "/never/", None, 200]])
    # `coverage run` saves once more as it ends, after the plugin: an empty file.
    for name in stray_data_files(project):
        leftover = CoverageData(str(project / name))
        leftover.read()
        assert leftover.measured_files() == set()


def test_cwd_env_and_log_keys(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} -c "import os, runpy, sys; print('GREETING=' + os.environ['GREETING'], 'CWD=' + os.getcwd()); sys.path.insert(0, '..'); sys.argv = ['serve.py', '{port}']; runpy.run_path('../serve.py')"
        cwd = srv
        env = GREETING = hello
        log = logs/server.log
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        reports = html
        """)  # noqa: E501
    (project / "srv").mkdir()
    run = run_nose2(project)
    assert run.returncode == 0, run.stderr
    log = (project / "logs" / "server.log").read_text()
    assert f"GREETING=hello CWD={project / 'srv'}" in log
    assert "GET /health/" in log  # Werkzeug's request log
    assert not (project / "srv" / ".coverage").exists()
    assert (project / "htmlcov" / "index.html").exists()  # relative to the rcfile, not cwd
    assert_exact(project, plan(project))


def test_a_long_wait_shows_progress_on_a_terminal(tmp_path):
    import os
    import pty
    project = make_project(tmp_path, servercov="""
        command = {python} -c "import sys, time, runpy; time.sleep(1.5); sys.argv = ['serve.py', '{port}']; runpy.run_path('serve.py')"
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        reports = term
        """)  # noqa: E501
    controller, terminal = pty.openpty()
    runner = subprocess.Popen(
        [sys.executable, "-m", "nose2", "--with-servercov"], cwd=project,
        env=python_env(), stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    try:
        while chunk := os.read(controller, 65536):  # read as it comes: a pty buffer is small
            shown += chunk
    except OSError:
        pass  # EIO: the run closed the terminal
    finally:
        os.close(controller)
        runner.wait(timeout=120)
    assert runner.returncode == 0
    assert b"servercov: waiting 1 s of 30 for http://127.0.0.1:" in shown
    assert b"servercov: server started" in shown


def test_verbose_runs_show_the_server_output(tmp_path):
    project = make_project(tmp_path)
    quiet, verbose = run_nose2(project), run_nose2(project, "-v")
    assert quiet.returncode == verbose.returncode == 0
    assert "server: " not in quiet.stderr
    assert any(line.startswith("server: ") and "GET /health/" in line
               for line in verbose.stderr.splitlines())
