"""coverage.py's private names: present in the coverage CI runs, refused in one line where not.

CI runs these on the oldest and the newest coverage the package declares, so a
release that moves a name servercov reads fails here first.  A coverage that
lacks one refuses the feature that needs it, in one line named as a problem
of the process, and writes no dump that could hold wrong numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nose2_servercov import protocol
from tests.support import REPO, python_env

CHECK = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import coverage
from nose2_servercov.inserver import coverage_private
folder = sys.argv[2]
cov = coverage.Coverage(data_file=os.path.join(folder, "data"), branch=True,
                        source=[folder], config_file=False)
cov.start()
import work
work.classify(3)
files = coverage_private.measured_file_count(cov)
cov.switch_context("a test")  # a flush: the data object and its file exist
started = {"missing": coverage_private.missing_names(cov),
           "refusals": [coverage_private.refusal(cov, feature) for feature
                        in (coverage_private.SNAPSHOTS, coverage_private.MASTER_DATA)],
           "files": files, "flushed": coverage_private.measured_file_count(cov),
           "started": coverage_private.is_started(cov),
           "context": coverage_private.current_context(cov)}
cov.stop()
started["stopped"] = coverage_private.is_started(cov)
print(json.dumps(started))
"""

WORK = """
def classify(n):
    if n % 3 == 0:
        return "fizz"
    return "other"
"""


def _run(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "work.py").write_text(WORK)
    return subprocess.run([sys.executable, "-c", script, str(REPO), str(tmp_path)],
                          cwd=tmp_path, env=python_env(PYTHONPATH=str(tmp_path), **env),
                          capture_output=True, text=True, timeout=120)


def test_the_running_coverage_has_every_private_name_servercov_reads(tmp_path):
    run = _run(tmp_path, CHECK)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["missing"] == []
    assert found["refusals"] == [None, None]
    assert found["files"] == 1 and found["flushed"] == 0
    assert found["started"] is True and found["stopped"] is False
    assert found["context"] == "a test"


WITHOUT_A_NAME = """
import os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import coverage
from nose2_servercov.inserver import dumps
folder = sys.argv[2]
cov = coverage.Coverage(data_file=os.path.join(folder, "data"), branch=True,
                        source=[folder], config_file=False)
cov.start()
import work
work.classify(3)
del cov._data._current_context  # as a coverage release that renamed it would be
dumps.start_answering()
with open(os.path.join(folder, "request"), "w") as f:
    f.write("1")
deadline = time.monotonic() + 30
while time.monotonic() < deadline and any(
        t.name == "servercov-snapshots" for t in threading.enumerate()):
    time.sleep(0.02)
print("thread ended" if time.monotonic() < deadline else "thread still running")
"""


def test_a_coverage_without_a_name_snapshots_need_refuses_them_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = _run(tmp_path, WITHOUT_A_NAME, SERVERCOV_CONTROL=str(tmp_path),
               SERVERCOV_RUN_DIR=str(run_dir))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "thread ended"
    problems = list(run_dir.glob("problem.*"))
    assert len(problems) == 1
    lines = problems[0].read_text().splitlines()
    assert len(lines) == 1
    assert "has no CoverageData._current_context" in lines[0]
    assert "snapshots and autosave of this process are off" in lines[0]
    assert lines[0] in run.stderr  # said on the server's output too
    assert not list(tmp_path.glob("data.servercov-dump.*")), "a dump was written"
    pid = protocol.pid_in_name(problems[0].name, "problem.")
    assert pid is not None
    # Registered, never answered: the run's request fails at its deadline, named.
    assert (tmp_path / protocol.answer_file(pid)).read_text() == protocol.REGISTERED_ANSWER
