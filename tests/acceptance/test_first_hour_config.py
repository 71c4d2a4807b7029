"""The first hour, config side (issue 24): where the rcfile is found, typos, the html title.

Real runs of ``servercov run``, ``nose2 --with-servercov`` and
``pytest --servercov`` against the basic scenario's real server.  Each test
checks the exact line a newcomer sees: the rcfile of the project found from
a subfolder (and never one above the folder holding ``.git``), pytest's
rootdir searched up to, ``did you mean`` for a misspelled key, report name
or section, a command that cannot know its port refused before anything
starts, and the html report titled after the server's command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    make_project,
    python_env,
    run_nose2,
    run_servercov,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(180)

# The test command of `servercov run`: one request to the server it measures.
REQUEST_HEALTH = [sys.executable, "-c", "import os, urllib.request; urllib.request.urlopen("
                  "os.environ['SERVERCOV_URL'] + '/health/').read()"]
PYTEST_HEALTH = """\
import urllib.request


def test_health(servercov_url):
    assert urllib.request.urlopen(servercov_url + "/health/").status == 200
"""
SEARCHED = (".apirc, .coveragerc, setup.cfg, tox.ini, pyproject.toml")
SECTIONS = ("([servercov]; [coverage:servercov] in setup.cfg or tox.ini; [tool.servercov] in "
            "pyproject.toml)")


def report_lines(project: Path) -> list[str]:
    """Return the report lines of a run of the basic scenario's rcfile in ``project``."""
    return [f"servercov: html report: {project / 'htmlcov' / 'index.html'}",
            f"servercov: json report: {project / 'coverage.json'}"]


# --- item 2: the rcfile is searched up to the folder holding .git, pytest's rootdir ------------

def test_run_from_a_subfolder_uses_the_rcfile_of_the_folder_holding_git(tmp_path):
    project = make_project(tmp_path)
    (project / ".git").mkdir()
    tests = project / "tests" / "smoke"
    tests.mkdir(parents=True)
    run = run_servercov(tests, "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 0, run.stderr
    lines = servercov_lines(run.stderr)
    for line in report_lines(project):  # relative places stay relative to the rcfile's folder
        assert line in lines, run.stderr
    assert (project / "htmlcov" / "index.html").is_file()
    assert list(tests.iterdir()) == []  # nothing written where the run was started
    assert_no_leftovers(project)


def test_an_rcfile_above_the_folder_holding_git_is_not_used(tmp_path):
    outer = make_project(tmp_path)  # has an .apirc: a home folder's, another project's
    project = outer / "project"
    (project / ".git").mkdir(parents=True)
    (project / "tests").mkdir()
    run = run_servercov(project / "tests", "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 1, run.stderr
    assert servercov_lines(run.stderr) == [
        f"servercov: error: no rcfile: none of {SEARCHED} in {project / 'tests'}, {project} "
        f"has a servercov section {SECTIONS}: add one, or name the file with --rcfile FILE"]
    assert not (outer / "htmlcov").exists()
    assert_no_leftovers(outer)


def test_pytest_from_a_subfolder_finds_the_rcfile_in_its_rootdir(tmp_path):
    project = make_project(tmp_path)  # no .git anywhere: pytest's rootdir is the top
    (project / "pytest.ini").write_text("[pytest]\n")
    tests = project / "api_tests"
    tests.mkdir()
    (tests / "test_health.py").write_text(PYTEST_HEALTH)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--servercov"], cwd=tests, env=python_env(), capture_output=True,
                         text=True, timeout=RUN_TIMEOUT)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert f"rootdir: {project}" in output
    assert "1 passed" in output
    lines = servercov_lines(output)
    for line in report_lines(project):
        assert line in lines, output
    assert_no_leftovers(project)


# --- item 6: did you mean --------------------------------------------------------------------

GOOD = """
    command = {python} serve.py {port}
    ready_path = /health/
    shutdown_path = /servercov/shutdown/
    reports = json
    """


@pytest.mark.parametrize(("extra", "says"), [
    ("ready_pth = /health/",
     "[servercov] ready_pth: unknown key; did you mean ready_path? (servercov keys lists every "
     "key)"),
    ("reports = term, htm",
     "[servercov] reports: expected report names among term, term-missing, html, xml, json, "
     "lcov, got 'term, htm'; did you mean html?"),
])
def test_a_misspelled_key_or_report_gets_the_closest_valid_one(tmp_path, extra, says):
    project = make_project(tmp_path, servercov=GOOD.replace("reports = json", extra))
    run = run_servercov(project, "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 1, run.stderr
    assert servercov_lines(run.stderr) == [f"servercov: error: {project / '.apirc'}: {says}"]
    assert_no_leftovers(project)


def test_a_misspelled_section_is_named_instead_of_no_rcfile(tmp_path):
    project = make_project(tmp_path, servercov=GOOD)
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("[servercov]", "[servercove]"))
    expected = [f"servercov: error: {rcfile}: [servercove]: not a section servercov reads; "
                "did you mean [servercov]?"]
    run = run_servercov(project, "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 1, run.stderr
    assert servercov_lines(run.stderr) == expected
    nose2 = run_nose2(project)
    assert nose2.returncode == 1, nose2.stderr
    assert servercov_lines(nose2.stderr) == expected
    assert_no_leftovers(project)


# --- a command that cannot know its port ------------------------------------------------------

def test_a_command_without_port_is_refused_before_anything_starts(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py 5000
        ready_path = /health/
        """)
    run = run_servercov(project, "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 1, run.stderr
    assert servercov_lines(run.stderr) == [
        f"servercov: error: {project / '.apirc'}: [servercov] command: expected {{port}} (or "
        "{url}) in the command: with port = 0 a free port is chosen per run and the server "
        "must be told it, e.g. '--port {port}'; got '{python} serve.py 5000'"]
    assert "server started" not in run.stderr  # refused before anything started
    assert not list(project.glob(".coverage*")) and not (project / "htmlcov").exists()
    assert_no_leftovers(project)


# --- item 10: the html report says whose coverage it is ---------------------------------------

def html_title(project: Path) -> str:
    index = (project / "htmlcov" / "index.html").read_text()
    found = re.search(r"<title>(.*)</title>", index)
    assert found, index
    return found.group(1)


def test_the_html_report_is_titled_after_the_servers_command(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 0, run.stderr
    python = os.path.basename(sys.executable)
    assert re.fullmatch(rf"Server coverage: {re.escape(python)} serve\.py [0-9]+",
                        html_title(project)), html_title(project)
    assert_no_leftovers(project)


@pytest.mark.parametrize("title", ["Coverage report", "Items API"])
def test_a_title_set_in_the_rcfile_is_kept(tmp_path, title):
    """Coverage's own default, chosen by the user, is kept too: the rcfile says so."""
    project = make_project(tmp_path)
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("[servercov]",
                                                 f"[html]\ntitle = {title}\n\n[servercov]"))
    run = run_servercov(project, "run", "--", *REQUEST_HEALTH)
    assert run.returncode == 0, run.stderr
    assert html_title(project) == title
    assert_no_leftovers(project)
