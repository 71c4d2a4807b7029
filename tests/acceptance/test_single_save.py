"""No measured process saves its parallel data file twice.

coverage 7.13.1 to 7.16.2 (the newest coverage of Python 3.10 among them)
name a parallel data file after the hash of its data at its first save; a
second save adds data but keeps the name, and ``combine`` can then take the
file for a duplicate of another with that first data, skip it and delete it
(coverage #2338, fixed in 7.17.0).  So no way servercov stops or snapshots a
server may save one process's file twice: every write of a data file is read
back from coverage's own ``debug = dataio`` log, per file, for the servers
whose processes save along the most paths (the uWSGI master's data at fork,
gunicorn's preloaded app, a stop by signal, a stop by the route).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import coverage
import pytest

from tests.acceptance.test_servers import VARIANTS, require_servers, server_path
from tests.support import make_project, plan, run_nose2, stray_data_files

pytestmark = pytest.mark.timeout(240)

# One line per CoverageData.write() (coverage 7.13.1 on), whatever it does then.
WRITE = re.compile(r"(?:Finishing data file|Writing \(no-op\) data file|"
                   r"Data file name is up to date) '([^']+)'")
PARALLEL = re.compile(r"^(.*\.pid\d+\.X\w+x)(?:\.H\w+h)?$")
HASHED_NAMES = tuple(int(part) for part in coverage.__version__.split(".")[:3]) >= (7, 13, 1)


def saves_per_file(project: Path) -> Counter[str]:
    """Return how many times each parallel data file (its name before the hash) was saved."""
    text = "".join(p.read_text(errors="replace") for p in project.glob("dataio.txt*"))
    saves: Counter[str] = Counter()
    for name in WRITE.findall(text):
        parallel = PARALLEL.match(name)
        if parallel:
            saves[parallel[1]] += 1
    return saves


@pytest.mark.skipif(not HASHED_NAMES, reason="coverage < 7.13.1 names no data file by its hash")
@pytest.mark.parametrize(("name", "route"), [
    ("uwsgi-master-forkhooks", True), ("uwsgi-master", False), ("gunicorn-preload", True),
    ("gunicorn-sync-script", False), ("werkzeug-threaded", False)])
def test_no_process_saves_its_parallel_data_file_twice(tmp_path, name, route):
    require_servers()
    variant = VARIANTS[name]
    project = make_project(tmp_path, "servers", servercov=variant.servercov(route=route),
                           run="debug = dataio, pid\ndebug_file = dataio.txt")
    run = run_nose2(project, PATH=server_path(), LOAD_WORKERS=str(variant.workers))
    assert run.returncode == 0, run.stderr
    assert re.search(r"^servercov: server stopped by (shutdown_path|SIG[A-Z]+) ", run.stderr,
                     re.M), run.stderr
    saves = saves_per_file(project)
    assert saves, run.stderr  # the log was read (a stop by signal may save through dumps)
    assert [file for file, count in saves.items() if count > 1] == [], saves
    assert stray_data_files(project) == []
    assert plan(project)
