"""What every front end must do alike: one test each, parametrized over nose2, pytest and run.

The three front ends are thin layers over one engine, so a passing suite,
a failing test, ``fail_under``, an interrupt and a server that cannot start
must end the same way under each: the same ``servercov:`` lines, the same
exact data, nothing left behind.  Only what the test runner itself prints
and its exit statuses differ; :class:`FrontEnd` holds those differences.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import sections_support
from tests.support import (
    RUN_TIMEOUT,
    assert_exact,
    assert_no_leftovers,
    make_project,
    plan,
    python_env,
    servercov_command,
    servercov_lines,
    stray_data_files,
    wait_for_file,
)

pytestmark = pytest.mark.timeout(180)

ONCE_B = ["GET", "/once/b/", None, 200]


@dataclass(frozen=True)
class FrontEnd:
    """How one front end runs the basic scenario's two tests, and what its runner prints."""

    name: str
    argv: list[str]
    fail_under_status: int  # the exit status when the tests pass but fail_under is missed
    interrupted: Callable[[int], bool]  # whether an exit status says "interrupted"
    two_tests_passed: Callable[[str], bool]  # from the run's whole output
    no_test_ran: Callable[[str], bool]


def _unittest_passed(output: str) -> bool:
    return "Ran 2 tests" in output and "failures=" not in output and "errors=" not in output


FRONT_ENDS = [
    FrontEnd("nose2", [sys.executable, "-m", "nose2", "--with-servercov"],
             fail_under_status=1, interrupted=lambda status: status != 0,
             two_tests_passed=_unittest_passed, no_test_ran=lambda out: "Ran 0 tests" in out),
    FrontEnd("pytest", [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                        "--servercov", "test_plan.py"],
             fail_under_status=1, interrupted=lambda status: status == 2,  # "interrupted"
             two_tests_passed=lambda out: "2 passed" in out,
             no_test_ran=lambda out: "passed" not in out and "failed" not in out),
    FrontEnd("servercov run", servercov_command("run", "--", sys.executable, "-m", "unittest",
                                                "-v"),
             fail_under_status=2, interrupted=lambda status: status != 0,
             two_tests_passed=lambda out: _unittest_passed(out) and "\nOK" in out,
             no_test_ran=lambda out: "Ran " not in out),
]


@pytest.fixture(params=FRONT_ENDS, ids=[front_end.name for front_end in FRONT_ENDS])
def front_end(request: pytest.FixtureRequest) -> FrontEnd:
    return request.param


def run(front_end: FrontEnd, project: Path, **env: str) -> tuple[int, str, str]:
    """Run the front end in ``project``; return its status, stdout and stderr."""
    done = subprocess.run(front_end.argv, cwd=project, env=python_env(**env),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def assert_clean(project: Path) -> None:
    """Assert that no data file, control folder or process of the run is left."""
    assert stray_data_files(project) == []
    assert not (project / ".servercov").exists()
    assert_no_leftovers(project)


def test_a_passing_suite_is_measured_exactly(tmp_path, front_end):
    project = make_project(tmp_path)
    status, out, err = run(front_end, project)
    assert status == 0, out + err
    assert front_end.two_tests_passed(out + err), out + err
    lines = servercov_lines(err)
    assert lines[0].startswith("servercov: server started: pid "), err
    assert any("server stopped by shutdown_path" in line for line in lines), err
    assert "webapp/__init__.py" in out  # the term-missing report
    assert (project / "htmlcov" / "index.html").exists()
    assert json.loads((project / "coverage.json").read_text())["totals"]["covered_lines"] > 0
    assert_exact(project, plan(project))
    assert_clean(project)


def test_a_failing_test_still_reports_everything_and_fails_the_run(tmp_path, front_end):
    project = make_project(tmp_path)
    status, out, err = run(front_end, project, SCENARIO="fail")
    assert status == 1, out + err
    assert "this test fails on purpose" in out + err
    assert (project / "htmlcov" / "index.html").exists()
    assert_exact(project, plan(project))
    assert_clean(project)


def test_fail_under_not_met_fails_the_run_after_passing_tests(tmp_path, front_end):
    project = make_project(tmp_path)
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text() + "\n[report]\nfail_under = 99\n")
    status, out, err = run(front_end, project)
    assert status == front_end.fail_under_status, out + err
    assert "is under fail_under 99" in err
    assert front_end.two_tests_passed(out + err), out + err
    assert_clean(project)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_run_stops_the_server_and_keeps_the_data(tmp_path, front_end, sig):
    project = make_project(tmp_path)
    runner = subprocess.Popen(front_end.argv, cwd=project, env=python_env(SCENARIO="wait"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_file(project / "waiting", process=runner)
        runner.send_signal(sig)  # to the runner alone, as `kill` does; Ctrl-C is tested apart
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert front_end.interrupted(runner.returncode), output
    assert "server stopped by shutdown_path" in output
    assert_exact(project, [*plan(project), ONCE_B])
    assert_clean(project)


def test_a_server_exiting_early_is_one_error_with_its_last_lines_and_no_test(tmp_path,
                                                                            front_end):
    project = make_project(tmp_path, servercov="""
        command = {python} -c "print('loading settings'); print('KeyError: DATABASE_URL'); raise SystemExit(3)" {port}
        """)  # noqa: E501
    status, out, err = run(front_end, project)
    assert status == 1, out + err
    lines = servercov_lines(err)
    assert lines[0].startswith("servercov: error: the server exited with code 3"), err
    assert [line for line in lines if line.startswith("servercov: error:")] == lines[:1], err
    assert "| KeyError: DATABASE_URL" in err
    assert "while the tests ran" not in err
    assert "Traceback" not in out + err
    assert front_end.no_test_ran(out + err), out + err
    assert "TOTAL" not in out
    assert_no_leftovers(project)  # its data file stays: nothing reported it, the next run erases it


def test_sections_start_in_order_and_are_measured_exactly(tmp_path, front_end):
    """[servercov:NAME] sections (Redis unmeasured, a second service measured), issue 22."""
    project = make_project(tmp_path, "sections")
    status, out, err = run(front_end, project)
    assert status == 0, out + err
    assert front_end.two_tests_passed(out + err), out + err
    lines = servercov_lines(err)
    assert lines[0].startswith("servercov: section redis started: pid "), err
    assert lines[1].startswith("servercov: section inventory started: pid "), err
    assert lines[2].startswith("servercov: server started: pid "), err
    stops = [line.split(" stopped by ")[0] for line in lines if " stopped by " in line]
    assert stops == ["servercov: server", "servercov: section inventory",
                     "servercov: section redis"], err
    sections_support.assert_exact(project, plan(project))
    assert_clean(project)
