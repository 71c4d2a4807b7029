"""Helpers of the worker tests: a real Redis, the shop example in a folder, its replay.

The shop (``examples/workers``) is a Flask API whose views hand their work to
a Celery worker and an RQ worker.  The replay runs the same requests in one
process, Celery eager and RQ synchronous, under coverage: the lines a measured
run must hold, line for line, for the API's and the workers' modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.sections_support import redis_server
from tests.support import REPO, RUN_TIMEOUT, measured_lines, python_env

EXAMPLE = REPO / "examples" / "workers"
# What the example's tests request, test by test (examples/workers/tests/test_shop.py).
SHOP_PLAN: dict[str, list[str]] = {
    "test_prices": ["/price/3", "/price/12"],
    "test_refunds": ["/refund/5", "/refund/-1"],
    "test_invoice": ["/invoice/7"],
    "test_shipping": ["/ship/4/1"],
}
CELERY_PREFORK = "{python} -m celery -A shop.tasks worker --pool prefork -c 2 --loglevel INFO"
CELERY_THREADS = "{python} -m celery -A shop.tasks worker --pool threads -c 4 --loglevel INFO"


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[str]:
    """Start a real redis-server on a free port, in ``folder``; yield its URL; end it after."""
    with redis_server(folder) as port:
        yield f"redis://127.0.0.1:{port}/0"


def shop_project(tmp_path: Path) -> Path:
    """Copy the shop example into ``tmp_path``; return its folder."""
    project = tmp_path / "workers"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(
        "__pycache__", ".coverage*", "cover", ".servercov"))
    return project


def set_celery(project: Path, command: str, *, contexts: bool = False,
               extra: str = "") -> None:
    """Replace the example rcfile's Celery command; add ``contexts = test`` and keys."""
    rcfile = project / ".apirc"
    text = rcfile.read_text()
    text = re.sub(r"(\[servercov:celery\]\ncommand = ).*\n", lambda m: m[1] + command + "\n",
                  text)
    if contexts:
        extra += "contexts = test\n"
    if " gevent " in command:  # coverage must follow the greenlets (servercov says so)
        text = text.replace("[run]\n", "[run]\nconcurrency = gevent, thread\n", 1)
    rcfile.write_text(text + extra)


REPLAY = """
import json, os, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=["shop"], config_file=False)
cov.start()
from shop import api, tasks
tasks.app.conf.task_always_eager = True
client = api.create_app(is_async=False).test_client()
for path in json.loads(sys.argv[2]):
    assert client.get(path).status_code in (200, 400), path
cov.stop()
cov.save()
"""


def replay(project: Path, redis: str, paths: Sequence[str]) -> dict[str, set[int]]:
    """Run ``paths`` in-process (Celery eager, RQ synchronous) under coverage; its lines."""
    data_file = project / ".replay"
    subprocess.run([sys.executable, "-c", REPLAY, str(data_file), json.dumps(list(paths))],
                   cwd=project, env=python_env(SHOP_REDIS_URL=redis), check=True,
                   timeout=RUN_TIMEOUT)
    return measured_lines(data_file, project / "shop")


def all_paths(tests: Sequence[str] = tuple(SHOP_PLAN)) -> list[str]:
    """Return the paths ``tests`` request, after the ready check's."""
    return ["/health"] + [path for name in tests for path in SHOP_PLAN[name]]


README_COMMAND = "python -m nose2 -s tests --with-servercov --servercov-rcfile .apirc"
README_PYTEST = "python -m pytest tests --servercov --servercov-rcfile .apirc"


def run_tests(project: Path, *args: str,
              command: str = README_COMMAND) -> subprocess.CompletedProcess[str]:
    """Run the example's tests under nose2 (or ``command``) with servercov, as its README says."""
    return subprocess.run(
        [sys.executable, *command.split()[1:], *args], cwd=project,
        env=python_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}"
                            f"{os.environ.get('PATH', '')}"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT)
