"""examples/<server>/.apirc: each runs the sample's view tests, from the repository root.

Each example is run as its README line says (``nose2 --with-servercov
--servercov-rcfile examples/<server>/.apirc``) in a copy of the repository,
with the virtual environment's scripts on PATH (the ``uwsgi`` binary).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import coverage
import pytest

from tests.support import REPO, RUN_TIMEOUT, assert_no_leftovers, python_env

pytestmark = pytest.mark.timeout(180)

# The examples that measure the repository's sample_api: examples/browser measures its
# own app with browser suites (test_browser.py), the FastAPI and Django ones theirs
# (test_framework_examples.py); examples/remote is the collector's side of a
# container, run by test_remote.py.
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/.apirc")
                  if "sample_api" in p.read_text() and p.parent.name != "remote")
BIN = Path(sys.executable).parent


def test_there_is_one_example_per_server_and_the_readmes_list_them():
    assert EXAMPLES == ["gunicorn", "gunicorn-gevent", "uwsgi", "uwsgi-nomaster", "waitress",
                        "werkzeug"]
    listing = (REPO / "examples" / "README.md").read_text()
    for name in EXAMPLES:
        assert f"examples/{name}/.apirc" in listing
    assert "examples/README.md" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("server", EXAMPLES)
def test_the_example_measures_the_sample_views(tmp_path, server):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "unittest.cfg", repo)
    for folder in ("sample_api", "tests/views", f"examples/{server}"):
        shutil.copytree(REPO / folder, repo / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".coverage*", "cover",
                                                      "*.sqlite3", "*.fifo"))
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    run = subprocess.run(
        [sys.executable, "-m", "nose2", "--with-servercov", "--servercov-rcfile",
         f"examples/{server}/.apirc"], cwd=repo, env=python_env(PATH=path),
        capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "servercov: server stopped by shutdown_path" in run.stderr
    example = repo / "examples" / server
    assert (example / "cover" / "index.html").exists()
    assert "sample_api/views.py" in run.stdout  # the terminal report
    # Every view line ran except the export route, which no test calls.
    cov = coverage.Coverage(data_file=str(example / ".coverage"))
    cov.load()
    views = repo / "sample_api" / "views.py"
    _, statements, _, missing, _ = cov.analysis2(str(views))
    export = views.read_text().splitlines().index(
        "def export_user(uid: str) -> Response:") + 1
    assert missing == [n for n in statements if n > export]
    assert sorted(p.name for p in example.glob(".coverage.*")) == []
    assert_no_leftovers(repo)
