"""Every measured process is accounted for: losses are named and fail the run.

Real servers, real signals: a process SIGKILLed by the test, a data file left
empty, a server Python without coverage, a `source` that matches nothing,
Django's runserver under its autoreloader stopped by signal alone (exact
against an in-process replay through ``django.test.Client``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    lines_differ,
    make_project,
    measured_lines,
    python_env,
    run_nose2,
    servercov_lines,
    stray_data_files,
)

pytestmark = pytest.mark.timeout(240)

DJANGO_TRUTH = """
import json, os, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]], branch=True)
cov.start()
os.environ["DJANGO_SETTINGS_MODULE"] = "djapp.settings"
import django
django.setup()
from django.test import Client
client = Client()
for method, path, body, status in json.loads(sys.argv[3]):
    if method == "GET":
        answer = client.get(path)
    else:
        answer = client.post(path, data=body if isinstance(body, str) else json.dumps(body),
                             content_type="application/json")
    assert answer.status_code == status, (path, answer.status_code)
cov.stop()
cov.save()
"""


def django_truth(project: Path) -> dict[str, set[int]]:
    """Replay the scenario's plan in-process through Django's test client under coverage."""
    requests = json.loads((project / "plan.json").read_text())
    subprocess.run([sys.executable, "-c", DJANGO_TRUTH, str(project / ".truth"), "djapp",
                    json.dumps(requests)], cwd=project, env=python_env(), check=True,
                   timeout=RUN_TIMEOUT)
    return measured_lines(project / ".truth", project / "djapp")


def test_django_runserver_with_its_autoreloader_stopped_by_signal_is_exact(tmp_path):
    project = make_project(tmp_path, "django_reloader")
    run = run_nose2(project)
    output = run.stderr
    log = (project / "server.log").read_text()
    assert run.returncode == 0, output + log
    assert "Watching for file changes with StatReloader" in log  # the reloader is on
    assert "server stopped by SIGTERM" in output
    assert "lost data" not in output
    measured = measured_lines(project / ".coverage", project / "djapp")
    truth = django_truth(project)
    assert truth["views.py"], "the ground truth recorded nothing"
    assert lines_differ(measured, truth) == [], output
    assert stray_data_files(project) == []
    assert_no_leftovers(project)
