"""What nose2 --with-servercov says when the server cannot start: one clear story, no report."""

from __future__ import annotations

import pytest

from tests.support import assert_no_leftovers, make_project, run_nose2, servercov_lines

pytestmark = pytest.mark.timeout(120)


def test_a_typo_in_the_command_is_one_error_and_no_report(tmp_path):
    project = make_project(tmp_path, servercov="command = {python} serv.py {port}\n")
    run = run_nose2(project)
    assert run.returncode == 1
    errors = [line for line in servercov_lines(run.stderr) if line.startswith("servercov: error")]
    assert len(errors) == 1 and "before it was ready" in errors[0], run.stderr
    assert "can't open file" in run.stderr and "serv.py" in run.stderr
    assert "while the tests ran" not in run.stderr
    assert "combined" not in run.stderr and "TOTAL" not in run.stdout  # no 0 % / 7 % report
    assert not (project / ".coverage").exists()
    assert_no_leftovers(project)


def test_an_rcfile_beside_the_tests_says_where_the_server_ran(tmp_path):
    project = make_project(tmp_path)
    (project / "tests").mkdir()
    (project / ".apirc").rename(project / "tests" / ".apirc")
    run = run_nose2(project, "--servercov-rcfile", "tests/.apirc")
    assert run.returncode == 1
    assert f"servercov: the server ran in {project / 'tests'}" in run.stderr, run.stderr
    assert "keep the rcfile at the project root, or set cwd" in run.stderr
    assert "while the tests ran" not in run.stderr and "TOTAL" not in run.stdout
    assert_no_leftovers(project)
