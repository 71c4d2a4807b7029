"""``pytest --servercov`` end to end: real pytest (and xdist, pytest-cov), real server, real data.

Also the contexts under concurrent tests (xdist, nose2's mp plugin) and the
pytest-cov / measured-test-process data combined with the server's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.support import (
    RUN_TIMEOUT,
    SCENARIOS,
    assert_exact,
    assert_no_leftovers,
    lines_differ,
    make_project,
    plan,
    python_env,
    run_nose2,
    run_servercov,
    servercov_lines,
    stray_data_files,
)

pytestmark = pytest.mark.timeout(240)

ONCE_B = ["GET", "/once/b/", None, 200]
NEVER = ["GET", "/never/", None, 200]
CONTEXTS_RC = """
    command = {python} serve.py {port}
    ready_path = /health/
    shutdown_path = /servercov/shutdown/
    contexts = test
    reports = term, html
    """


def pytest_project(tmp_path: Path, **rc: str) -> Path:
    """The basic scenario (app, plan, ServerTestCase tests) plus the pytest scenario's tests."""
    project = make_project(tmp_path, **rc)
    shutil.copytree(SCENARIOS / "pytest", project, dirs_exist_ok=True)
    return project


def run_pytest(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pytest ARGS`` in ``project``."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=project, env=python_env(**env), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def output(run: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"


def test_pytest_servercov_measures_exactly_what_the_tests_requested(tmp_path):
    project = pytest_project(tmp_path)
    run = run_pytest(project, "--servercov", "test_plan.py", "test_fixtures.py")
    assert run.returncode == 0, output(run)
    assert "4 passed" in run.stdout
    lines = servercov_lines(run.stderr)
    assert lines[0].startswith("servercov: server started: pid "), output(run)
    assert any("server stopped by shutdown_path" in line for line in lines), output(run)
    assert "webapp/__init__.py" in run.stdout  # the term-missing report
    assert_exact(project, [*plan(project), ONCE_B])
    assert stray_data_files(project) == []
    assert_no_leftovers(project)


def test_the_servers_output_shows_with_v_only(tmp_path):
    project = pytest_project(tmp_path)
    quiet = run_pytest(project, "--servercov", "test_fixtures.py")
    verbose = run_pytest(project, "--servercov", "-v", "test_fixtures.py")
    assert quiet.returncode == verbose.returncode == 0, output(quiet) + output(verbose)
    assert "server: " not in quiet.stdout + quiet.stderr
    # The request of the passing test, logged by the server while pytest captured the test.
    assert any(line.startswith("server: ") and "GET /once/b/" in line
               for line in verbose.stderr.splitlines()), output(verbose)


def test_the_ini_option_turns_it_on(tmp_path):
    project = pytest_project(tmp_path)
    (project / "pytest.ini").write_text("[pytest]\nservercov = true\n")
    run = run_pytest(project, "test_fixtures.py")
    assert run.returncode == 0, output(run)
    assert_exact(project, [["GET", "/health/", None, 200], ONCE_B])  # ready_path, the test


def test_one_server_serves_both_xdist_workers_exactly(tmp_path):
    project = pytest_project(tmp_path)
    run = run_pytest(project, "--servercov", "-n", "2", "-v", "test_plan.py", "test_fixtures.py")
    assert run.returncode == 0, output(run)
    started = [line for line in servercov_lines(run.stderr) if "server started" in line]
    assert len(started) == 1, output(run)
    assert "[gw0]" in run.stdout and "[gw1]" in run.stdout, output(run)
    assert_exact(project, [*plan(project), ONCE_B])
    assert stray_data_files(project) == []
    assert_no_leftovers(project)


def test_a_server_that_cannot_start_ends_the_session_before_any_test(tmp_path):
    project = pytest_project(tmp_path, servercov="command = {python} no_such_server.py {port}\n")
    run = run_pytest(project, "--servercov", "test_fixtures.py")
    assert run.returncode == 1, output(run)
    errors = [line for line in servercov_lines(run.stderr) if "error" in line]
    assert len(errors) == 1 and "no_such_server.py" in run.stderr, output(run)
    assert "while the tests ran" not in run.stderr
    assert "passed" not in run.stdout and "TOTAL" not in run.stdout
    assert_no_leftovers(project)


def test_servercov_url_without_a_server_says_how_to_run(tmp_path):
    project = pytest_project(tmp_path)
    run = run_pytest(project, "test_fixtures.py")
    assert run.returncode == 1
    assert "run pytest with --servercov" in run.stdout


# --- the test process's own data, side by side with the server's ---------------------------

def test_pytest_cov_data_and_the_servers_end_in_one_data_file_and_report(tmp_path):
    project = pytest_project(tmp_path)
    run = run_pytest(project, "--servercov", "--cov=webapp", "--cov-config=.apirc",
                     "test_plan.py", "test_fixtures.py", SCENARIO="inprocess")
    assert run.returncode == 0, output(run)
    # The server ran the plan and /once/b/; the test process itself ran /never/.
    measured = assert_exact(project, [*plan(project), ONCE_B, NEVER])
    # servercov's report is the combined one: server lines and test-process lines.
    report = json.loads((project / "coverage.json").read_text())
    entry = report["files"]["webapp/__init__.py"]
    assert set(entry["executed_lines"]) <= measured["__init__.py"]
    assert not set(entry["missing_lines"]) & measured["__init__.py"]
    assert stray_data_files(project) == []


def test_pytest_cov_under_xdist_and_the_server_combine_too(tmp_path):
    project = pytest_project(tmp_path)
    run = run_pytest(project, "--servercov", "-n", "2", "--cov=webapp", "--cov-config=.apirc",
                     "test_plan.py", "test_fixtures.py", SCENARIO="inprocess")
    assert run.returncode == 0, output(run)
    assert_exact(project, [*plan(project), ONCE_B, NEVER])
    assert stray_data_files(project) == []


def test_servercov_run_pytest_cov_keeps_the_test_process_data(tmp_path):
    project = pytest_project(tmp_path)
    run = run_servercov(project, "run", "--", sys.executable, "-m", "pytest", "-p",
                        "no:cacheprovider", "--cov=webapp", "--cov-config=.apirc",
                        "test_plan.py", "test_fixtures.py", SCENARIO="inprocess")
    assert run.returncode == 0, output(run)
    assert_exact(project, [*plan(project), ONCE_B, NEVER])
    assert stray_data_files(project) == []


@pytest.mark.parametrize("parallel", ["True", "False"])
def test_coverage_run_nose2_keeps_the_test_process_data(tmp_path, parallel):
    project = make_project(tmp_path)
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("parallel = True", f"parallel = {parallel}"))
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--rcfile=.apirc", "-m", "nose2",
         "--with-servercov"], cwd=project, env=python_env(SCENARIO="inprocess"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert run.returncode == 0, output(run)
    assert_exact(project, [*plan(project), NEVER])
    assert stray_data_files(project) == []


# --- contexts exact while tests run at once ------------------------------------------------

# The ground truth of contexts = test: each label's requests replayed in-process under
# that context, through the framework's own test client (sys.argv: data file, labels).
TRUTH_START = """
import json, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=["webapp"], branch=True,
                        config_file=False)
cov.start()
"""
TRUTH_LOOP = """
client.get("/health/")
for label, requests in json.loads(sys.argv[2]):
    cov.switch_context(label)
    for method, path, body, status in requests:
        answer = SEND(client, method, path, body)
        assert answer.status_code == status, (label, method, path, answer.status_code)
"""
# What runs after the last request (FastAPI's lifespan shutdown) is recorded under
# the context in effect then, the label of whichever test's request came last.
AFTER_THE_TESTS = "after the tests"
CONTEXT_TRUTHS = {
    "flask": TRUTH_START + """
from webapp import create_app
client = create_app().test_client()
""" + TRUTH_LOOP.replace("SEND(client, method, path, body)",
                         "client.open(path, method=method, json=body)") + """
cov.stop()
cov.save()
""",
    "fastapi": TRUTH_START + """
from fastapi.testclient import TestClient
from webapp import create_app
client = TestClient(create_app(), raise_server_exceptions=False)
client.__enter__()  # the lifespan's startup, as a server runs it before the first request
""" + TRUTH_LOOP.replace("SEND(client, method, path, body)",
                         "client.request(method, path, json=body)") + f"""
cov.switch_context({AFTER_THE_TESTS!r})
client.__exit__(None, None, None)  # its shutdown
cov.stop()
cov.save()
""",
    "django": TRUTH_START + """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
import django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
""" + TRUTH_LOOP.replace(
        "SEND(client, method, path, body)",
        'client.generic(method, path, json.dumps(body) if body is not None else "", '
        'content_type="application/json")') + """
cov.stop()
cov.save()
""",
}


def lines_by_context(data_file: Path, source: Path) -> dict[str, dict[str, set[int]]]:
    """Return {context: {file relative to ``source``: lines}} of ``data_file``."""
    data = CoverageData(str(data_file))
    data.read()
    found: dict[str, dict[str, set[int]]] = {}
    for context in data.measured_contexts():
        data.set_query_contexts(["^" + re.escape(context) + "$"])
        files = {}
        for name in data.measured_files():
            path = Path(name)
            lines = set(data.lines(name) or ())
            if path.is_relative_to(source) and lines:
                files[str(path.relative_to(source))] = lines
        if files:
            found[context] = files
    return found


def with_lines_added(found: dict[str, dict[str, set[int]]], context: str,
                     more: dict[str, set[int]]) -> dict[str, dict[str, set[int]]]:
    """Return ``found`` with the lines of ``more`` added to ``context``."""
    files = {name: set(lines) for name, lines in found[context].items()}
    for name, lines in more.items():
        files.setdefault(name, set()).update(lines)
    return {**found, context: files}


def assert_contexts_exact(project: Path, labels: dict[str, str],
                          framework: str = "flask") -> None:
    """Each test's context holds exactly what its requests ran in-process, nothing of the other.

    What runs after the tests (a lifespan shutdown) must be in exactly one of
    the tests' contexts, whole.
    """
    sys.path.insert(0, str(SCENARIOS / "pytest"))
    try:
        from interleave import REQUESTS
    finally:
        sys.path.pop(0)
    truth_file = project / ".truth"
    subprocess.run([sys.executable, "-c", CONTEXT_TRUTHS[framework], str(truth_file),
                    json.dumps([[label, REQUESTS[name]] for name, label in labels.items()])],
                   cwd=project, env=python_env(), check=True, timeout=RUN_TIMEOUT)
    truth = lines_by_context(truth_file, project / "webapp")
    measured = lines_by_context(project / ".coverage", project / "webapp")
    after = truth.pop(AFTER_THE_TESTS, None)
    assert set(truth) == {"", *labels.values()}
    assert set(measured) == set(truth), sorted(measured)
    candidates = [truth] if after is None else [
        with_lines_added(truth, label, after) for label in labels.values()]
    found = [{context: lines_differ(measured[context], expected[context])
              for context in expected} for expected in candidates]
    exact = [problems for problems in found if not any(problems.values())]
    assert len(exact) == 1, found


def assert_tests_overlapped(project: Path) -> None:
    """The two tests' request loops ran at the same time (the premise of the test)."""
    spans = {}
    for name in "ab":
        started, ended, count = (project / f"span.{name}").read_text().split()
        spans[name] = (float(started), float(ended))
        assert int(count) > 10
    overlap = min(spans["a"][1], spans["b"][1]) - max(spans["a"][0], spans["b"][0])
    assert overlap > 1.0, spans


def test_contexts_are_exact_under_xdist_with_interleaved_requests(tmp_path):
    project = pytest_project(tmp_path, servercov=CONTEXTS_RC)
    run = run_pytest(project, "--servercov", "-n", "2", "test_interleave_pytest.py",
                     MEET_DIR=str(project))
    assert run.returncode == 0, output(run)
    assert_tests_overlapped(project)
    assert_contexts_exact(project, {"a": "test_interleave_pytest.py::test_a",
                                    "b": "test_interleave_pytest.py::test_b"})
    [html_file] = (project / "htmlcov").glob("*__init___py.html")
    html = html_file.read_text()
    assert "test_interleave_pytest.py::test_a" in html  # the html report shows the contexts


# The same two interleaving tests against FastAPI and Django: an event loop switches
# requests at every await, Django's runserver runs each in its own thread.
INTERLEAVED_SETUPS = {
    "fastapi-uvicorn": ("fastapi", "{python} -m uvicorn app:app --host {host} --port {port}"),
    "django-runserver": ("django", "{python} manage.py runserver {host}:{port} --noreload"),
    "django-uvicorn": ("django", "{python} -m uvicorn django_asgi:application "
                       "--host {host} --port {port}"),
}


@pytest.mark.parametrize("name", list(INTERLEAVED_SETUPS))
def test_contexts_are_exact_for_asgi_and_django_with_interleaved_requests(tmp_path, name):
    scenario, command = INTERLEAVED_SETUPS[name]
    project = make_project(tmp_path, scenario, servercov=CONTEXTS_RC.replace(
        "{python} serve.py {port}", command).replace("term, html", "term"))
    shutil.copytree(SCENARIOS / "pytest", project, dirs_exist_ok=True)
    run = run_pytest(project, "--servercov", "-n", "2", "test_interleave_pytest.py",
                     MEET_DIR=str(project))
    assert run.returncode == 0, output(run)
    assert_tests_overlapped(project)
    assert_contexts_exact(project, {"a": "test_interleave_pytest.py::test_a",
                                    "b": "test_interleave_pytest.py::test_b"},
                          "fastapi" if scenario == "fastapi" else "django")


def test_contexts_are_exact_under_nose2_mp_with_interleaved_requests(tmp_path):
    project = pytest_project(tmp_path, servercov=CONTEXTS_RC)
    for name in ("test_plan.py", "test_fixtures.py", "test_interleave_pytest.py"):
        (project / name).unlink()
    run = run_nose2(project, "--plugin", "nose2.plugins.mp", "-N", "2", MEET_DIR=str(project))
    assert run.returncode == 0, output(run)
    assert_tests_overlapped(project)
    assert_contexts_exact(project, {"a": "test_interleave_nose2.A.test_a",
                                    "b": "test_interleave_nose2.B.test_b"})


# --- a project whose only config file is pyproject.toml ------------------------------------

PYPROJECT = """\
[project]
name = "webapp"
version = "1"

[tool.coverage.run]
branch = true
parallel = true
source = ["webapp"]

[tool.coverage.html]
directory = "cover"

[tool.servercov]
command = ["{python}", "serve.py", "{port}"]
ready_path = "/health/"
shutdown_path = "/servercov/shutdown/"
reports = ["term", "html"]

[tool.nose2.unittest]
plugins = "nose2_servercov"
"""


@pytest.mark.parametrize("front_end", ["nose2", "pytest", "servercov run"])
def test_a_pyproject_only_project_is_measured_by_every_front_end(tmp_path, front_end):
    project = make_project(tmp_path)
    (project / ".apirc").unlink()
    (project / "unittest.cfg").unlink()
    (project / "pyproject.toml").write_text(PYPROJECT)
    if front_end == "nose2":
        run = run_nose2(project)
    elif front_end == "pytest":
        run = run_pytest(project, "--servercov", "test_plan.py")
    else:
        run = run_servercov(project, "run", "--", sys.executable, "-m", "unittest", "-q")
    assert run.returncode == 0, output(run)
    assert "server started" in run.stderr
    assert_exact(project, plan(project))
    assert (project / "cover" / "index.html").exists()  # [tool.coverage.html] directory
    assert stray_data_files(project) == []
    assert_no_leftovers(project)


def test_no_rcfile_under_pytest_names_pytests_flag(tmp_path):
    project = pytest_project(tmp_path)
    (project / ".apirc").unlink()
    run = run_pytest(project, "--servercov", "test_fixtures.py")
    assert run.returncode == 1
    assert "name the file with --servercov-rcfile FILE" in run.stderr, output(run)
    run = run_nose2(project)
    assert run.returncode == 1
    assert "name the file with --servercov-rcfile FILE" in run.stderr, output(run)
