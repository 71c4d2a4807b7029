"""Labels (``X-Servercov-Context``) with markup or 10 kB: dropped, counted, served, never shown.

Real servers under ``contexts = test``: the good labels' contexts hold
exactly what an in-process replay runs under them, each bad label's request
is answered and measured under the one dropped-label context, the run says
how many were dropped on one ``servercov:`` line (the count crosses from
every server process), and no html file of the report holds the markup.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    lines_differ,
    make_project,
    python_env,
    run_nose2,
    run_servercov,
    running_serve,
    serve_state,
    servercov_lines,
    stop_serve,
)

pytestmark = pytest.mark.timeout(240)

DROPPED = "servercov-dropped-label"
MARKUP = '</script><script>document.title="servercov-injected"</script>'
LONG = "x" * 301
# (label, method, path, body, status): one request each, in this order.
LABELLED: list[list[object]] = [
    ["labels.test_one", "GET", "/items/1/", None, 200],
    [MARKUP, "GET", "/items/2/", None, 200],
    [LONG, "POST", "/echo/", {"a": 1}, 200],
    ["tab\tinside", "GET", "/once/b/", None, 200],
    ["labels.test_two", "GET", "/once/a/", None, 200],
]
SERVERS = {
    "werkzeug": "{python} serve.py {port}",
    "gunicorn-2": "{python} -m gunicorn -w 2 -b {host}:{port} webapp:create_app()",
}

# Sends LABELLED (argv[1]) to $SERVERCOV_URL, one connection each, checking each status.
SEND = """
import http.client, json, os, sys, urllib.parse
url = urllib.parse.urlsplit(os.environ["SERVERCOV_URL"])
for label, method, path, body, status in json.loads(sys.argv[1]):
    headers = {"X-Servercov-Context": label}
    payload = None if body is None else json.dumps(body)
    if payload is not None:
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    connection.request(method, path, body=payload, headers=headers)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    assert answer.status == status, (label[:40], path, answer.status)
"""
# The ground truth: the same requests in-process, each under the context it must land in.
TRUTH = """
import json, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=["webapp"], branch=True,
                        config_file=False)
cov.start()
from webapp import create_app
client = create_app().test_client()
client.get("/health/")
for context, method, path, body, status in json.loads(sys.argv[2]):
    cov.switch_context(context)
    assert client.open(path, method=method, json=body).status_code == status
cov.stop()
cov.save()
"""


def acceptable(label: str) -> bool:
    """The contract, spelled here independently of the code under test."""
    return len(label) <= 300 and label.isprintable() and not set('<>&"') & set(label)


def lines_by_context(data_file: Path, source: Path) -> dict[str, dict[str, set[int]]]:
    """Return {context: {file relative to ``source``: lines}} of ``data_file``."""
    data = CoverageData(str(data_file))
    data.read()
    found: dict[str, dict[str, set[int]]] = {}
    for context in data.measured_contexts():
        data.set_query_contexts(["^" + re.escape(context) + "$"])
        files = {}
        for name in data.measured_files():
            lines = set(data.lines(name) or ())
            if Path(name).is_relative_to(source) and lines:
                files[str(Path(name).relative_to(source))] = lines
        if files:
            found[context] = files
    return found


def assert_contexts_exact(project: Path) -> None:
    """Good labels exact, every dropped one's request under the dropped-label context."""
    replay = [[label if acceptable(label) else DROPPED, *rest] for label, *rest in LABELLED]
    # Under the C tracer: coverage's own switch_context under sys.monitoring (3.14's
    # default) records a line under the first context that ran it only.
    subprocess.run([sys.executable, "-c", TRUTH, str(project / ".truth"), json.dumps(replay)],
                   cwd=project, env=python_env(COVERAGE_CORE="ctrace"), check=True,
                   timeout=RUN_TIMEOUT)
    truth = lines_by_context(project / ".truth", project / "webapp")
    measured = lines_by_context(project / ".coverage", project / "webapp")
    assert set(truth) == {"", "labels.test_one", "labels.test_two", DROPPED}
    assert set(measured) == set(truth), sorted(measured)
    assert {context: lines_differ(measured[context], truth[context])
            for context in truth} == {context: [] for context in truth}


def assert_no_markup_in_the_report(project: Path) -> None:
    pages = list((project / "htmlcov").glob("*.html"))
    assert pages
    texts = {page.name: page.read_text(errors="replace") for page in pages}
    assert not [name for name, text in texts.items()
                if "servercov-injected" in text or LONG in text or "tab\tinside" in text]
    assert any("labels.test_one" in text for text in texts.values())  # contexts are shown


def assert_dropped_line(stderr: str) -> None:
    """One line says all three, with one of them (escaped, shortened) as the example."""
    lines = [line for line in servercov_lines(stderr) if "dropped (over" in line]
    said = ("servercov: warning: 3 X-Servercov-Context labels were dropped (over 300 "
            'characters, not printable, or holding one of <>&"): those requests were served '
            f"and measured under the context {DROPPED}; the first began ")
    # Which one is "first" depends on which server process got it first.
    assert [line.removeprefix(said) for line in lines if line.startswith(said)] in (
        [ascii(label[:60])] for label, *_ in LABELLED if not acceptable(str(label))), stderr


@pytest.mark.parametrize("server", list(SERVERS))
def test_servercov_run_drops_counts_and_never_shows_bad_labels(tmp_path, server):
    project = make_project(tmp_path, servercov=f"""
        command = {SERVERS[server]}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        contexts = test
        reports = term, html
        """)
    run = run_servercov(project, "run", "--", sys.executable, "-c", SEND, json.dumps(LABELLED))
    assert run.returncode == 0, run.stderr
    assert_dropped_line(run.stderr)
    assert_contexts_exact(project)
    assert_no_markup_in_the_report(project)
    assert_no_leftovers(project)


def test_serve_and_stop_say_the_dropped_labels_too(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        contexts = test
        reports = html
        """)
    with running_serve(project) as serve:
        url = serve_state(project, serve)["url"]
        sent = subprocess.run([sys.executable, "-c", SEND, json.dumps(LABELLED)], cwd=project,
                              env=python_env(SERVERCOV_URL=url), capture_output=True,
                              text=True, timeout=RUN_TIMEOUT)
        assert sent.returncode == 0, sent.stderr
        stop_serve(project, serve)
    assert_dropped_line((project / "serve.log").read_text())
    assert_contexts_exact(project)
    assert_no_markup_in_the_report(project)
    assert_no_leftovers(project)


PYTEST_TESTS = '''
import pytest


@pytest.mark.parametrize("kind", ['<img src=x onerror="alert(1)">', "plain"])
def test_items(servercov_session, kind):
    number = 1 if kind == "plain" else 2
    assert servercov_session.get(f"/items/{number}/").status_code == 200
'''


def test_pytest_node_ids_with_markup_are_dropped_and_said_at_the_end(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        contexts = test
        reports = html
        """)
    (project / "test_ids.py").write_text(PYTEST_TESTS)
    # The project is pytest's rootdir, so that node ids do not depend on where
    # the test folder is (CI keeps it inside the checkout, whose config pytest finds).
    (project / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--servercov", "test_ids.py"], cwd=project, env=python_env(),
                         capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    said = servercov_lines(run.stdout + "\n" + run.stderr)
    lines = [line for line in said if "dropped (over" in line]
    assert len(lines) == 1 and lines[0].startswith(
        "servercov: warning: 1 X-Servercov-Context label was dropped"), lines
    assert lines[0].endswith(ascii("test_ids.py::test_items[<img src=x onerror=\"alert(1)\">]"))
    contexts = lines_by_context(project / ".coverage", project / "webapp")
    assert set(contexts) == {"", "test_ids.py::test_items[plain]", DROPPED}
    assert_no_leftovers(project)


NOSE2_TESTS = '''
from nose2_servercov import ServerTestCase


class Labels(ServerTestCase):
    def test_good(self):
        self.assertEqual(self.get("/items/1/").status_code, 200)

    def test_markup(self):
        headers = {"X-Servercov-Context": "<b>&amp;</b>"}
        self.assertEqual(self.get("/items/2/", headers=headers).status_code, 200)
'''


def test_nose2_says_the_dropped_labels_at_the_end(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        contexts = test
        reports = html
        """)
    (project / "test_labels_nose2.py").write_text(NOSE2_TESTS)
    run = run_nose2(project, "test_labels_nose2")
    assert run.returncode == 0, run.stderr
    lines = [line for line in servercov_lines(run.stderr) if "dropped (over" in line]
    assert len(lines) == 1 and lines[0].startswith(
        "servercov: warning: 1 X-Servercov-Context label was dropped"), run.stderr
    assert lines[0].endswith("the first began '<b>&amp;</b>'")
    contexts = lines_by_context(project / ".coverage", project / "webapp")
    assert set(contexts) == {"", "test_labels_nose2.Labels.test_good", DROPPED}
    assert_no_leftovers(project)
