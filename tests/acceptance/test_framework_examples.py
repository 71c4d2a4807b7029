"""examples/fastapi-*, examples/django-*: each measures its own small app, as its rcfile says.

Each is run as its header says (``nose2 -s examples/items_<framework>/tests
--with-servercov --servercov-rcfile examples/<setup>/.apirc``) in a copy of
the repository's examples, and must measure every line of its app (the
lifespan's shutdown code included), stop by the route, and leave nothing.
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

BIN = Path(sys.executable).parent
SETUPS = {
    "fastapi-uvicorn": ("items_fastapi", ["__init__.py"]),
    "fastapi-hypercorn": ("items_fastapi", ["__init__.py"]),
    "django-runserver": ("items_django", ["items/urls.py", "items/views.py"]),
    "django-gunicorn": ("items_django", ["items/urls.py", "items/views.py"]),
}


def test_the_readmes_list_every_framework_example():
    listing = (REPO / "examples" / "README.md").read_text()
    for name in SETUPS:
        assert f"examples/{name}/.apirc" in listing
    assert sorted(p.parent.name for p in (REPO / "examples").glob("*/.apirc")
                  # browser and workers have their own tests (test_browser, test_workers)
                  if "sample_api" not in p.read_text()
                  and p.parent.name not in ("browser", "workers")
                  ) == sorted(SETUPS)


@pytest.mark.parametrize("setup", list(SETUPS))
def test_the_example_measures_every_line_of_its_app(tmp_path, setup):
    app, files = SETUPS[setup]
    repo = tmp_path / "repo"
    (repo / "examples").mkdir(parents=True)
    shutil.copy(REPO / "unittest.cfg", repo)
    for folder in (app, setup):
        shutil.copytree(REPO / "examples" / folder, repo / "examples" / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".coverage*", "cover"))
    run = subprocess.run(
        [sys.executable, "-m", "nose2", "-s", f"examples/{app}/tests", "--with-servercov",
         "--servercov-rcfile", f"examples/{setup}/.apirc"], cwd=repo,
        env=python_env(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "servercov: server stopped by shutdown_path" in run.stderr
    example = repo / "examples" / setup
    assert (example / "cover" / "index.html").exists()
    cov = coverage.Coverage(data_file=str(example / ".coverage"))
    cov.load()
    for name in files:
        _, statements, _, missing, _ = cov.analysis2(str(repo / "examples" / app / name))
        assert statements and missing == [], (name, missing)
    assert sorted(p.name for p in example.glob(".coverage.*")) == []
    assert_no_leftovers(repo)
