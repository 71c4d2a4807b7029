"""In-server dumps (snapshots, autosave) hold exactly what coverage itself would save.

The C tracer packs each arc into one integer, in a layout that changed in
coverage 7.13.2; a dump that unpacks it the wrong way writes line numbers like
4096 and 1048577.  These tests compare a dump with coverage's own ``save()``
of the same process, under every core this interpreter offers, on whatever
coverage is installed (CI runs them on the oldest and the newest declared),
check that every private name of coverage servercov reads is there, and that a
coverage whose collector is built in an unknown way, or that lacks such a name,
is refused in one line, as a problem of the process, rather than dumped wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nose2_servercov import protocol
from tests.support import CORES, REPO, python_env

DUMP_AND_SAVE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import coverage
from nose2_servercov.inserver import dumps
folder, core, branch = sys.argv[2], sys.argv[3], sys.argv[4] == "branch"
cov = coverage.Coverage(data_file=os.path.join(folder, "data"), branch=branch,
                        source=[folder], config_file=False)
cov.config.core = core
cov.start()
import work
for n in range(3000):
    work.classify(n)
dumps.write_dump(cov, folder)
cov.stop()
cov.save()
def arcs_and_lines(path):
    data = coverage.CoverageData(path)
    data.read()
    return {os.path.basename(f): [sorted(data.lines(f) or ()), sorted(data.arcs(f) or ())]
            for f in data.measured_files()}
tracer = cov._collector.tracer_name()
print(json.dumps({"tracer": tracer, "saved": arcs_and_lines(os.path.join(folder, "data")),
                  "dumped": arcs_and_lines(os.path.join(folder, "data.servercov-dump.pid"
                                                                + str(os.getpid())))}))
"""

# Line numbers past 4096 (2**12) and negative arcs (entries, exits): what a wrong
# unpacking would garble.
WORK = "def classify(n):\n" + "\n" * 5000 + """
    if n % 3 == 0:
        return "fizz"
    for _ in range(n % 2):
        pass
    return "other"
"""

TRACERS = {"ctrace": "CTracer", "pytrace": "PyTracer", "sysmon": "SysMonitor"}


@pytest.mark.parametrize("branch", ["branch", "lines"])
@pytest.mark.parametrize("core", CORES)
def test_a_dump_holds_exactly_what_coverage_saves(tmp_path, core, branch):
    if core == "sysmon" and branch == "branch" and sys.version_info < (3, 14):
        branch = "lines"  # sysmon measures branches only from 3.14 (coverage falls back)
    (tmp_path / "work.py").write_text(WORK)
    run = subprocess.run([sys.executable, "-c", DUMP_AND_SAVE, str(REPO), str(tmp_path), core,
                          branch], cwd=tmp_path, env=python_env(PYTHONPATH=str(tmp_path)),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["tracer"] == TRACERS[core]
    saved, dumped = result["saved"]["work.py"], result["dumped"]["work.py"]
    assert max(saved[0]) > 5000  # the lines beyond 4096 are there
    assert dumped == saved
    if branch == "branch":
        assert any(a < 0 or b < 0 for a, b in dumped[1]), "no entry or exit arc measured"


# A coverage servercov does not know, made two ways: a collector whose flush reads
# something the copy lacks, and a private name that is gone.
UNKNOWN_COLLECTOR = """
class Future(type(cov._collector)):
    # As a coverage release might: its flush reads something servercov does not copy.
    def flush_data(self):
        return self.packing_of_2030

cov._collector.__class__ = Future
"""
MISSING_NAME = """
del cov._data._current_context  # as a coverage release that renamed it would be
"""

# A process that measures work.py, whose classify(3) it has run.
MEASURING = """
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import coverage
from nose2_servercov.inserver import coverage_private, dumps
folder = sys.argv[2]
cov = coverage.Coverage(data_file=os.path.join(folder, "data"), branch=True,
                        source=[folder], config_file=False)
cov.start()
import work
work.classify(3)
"""

PRIVATE_NAMES = MEASURING + """
files = coverage_private.measured_file_count(cov)
cov.switch_context("a test")  # a flush: the data object and its file exist
found = {"missing": coverage_private.missing_names(cov),
         "refusals": [coverage_private.refusal(cov, feature) for feature
                      in (coverage_private.SNAPSHOTS, coverage_private.MASTER_DATA)],
         "files": files, "flushed": coverage_private.measured_file_count(cov),
         "started": coverage_private.is_started(cov),
         "context": coverage_private.current_context(cov)}
cov.stop()
found["stopped"] = coverage_private.is_started(cov)
print(json.dumps(found))
"""


def test_the_running_coverage_has_every_private_name_servercov_reads(tmp_path):
    """On the oldest and the newest coverage CI runs, so a release that moves one fails here."""
    (tmp_path / "work.py").write_text(WORK)
    run = subprocess.run([sys.executable, "-c", PRIVATE_NAMES, str(REPO), str(tmp_path)],
                         cwd=tmp_path, env=python_env(PYTHONPATH=str(tmp_path)),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["missing"] == []
    assert found["refusals"] == [None, None]
    assert found["files"] == 1 and found["flushed"] == 0
    assert found["started"] is True and found["stopped"] is False
    assert found["context"] == "a test"


REFUSED = MEASURING + """
exec(sys.argv[3])
dumps.start_answering()
with open(os.path.join(folder, "request"), "w") as f:
    f.write("1")
deadline = time.monotonic() + 30
while time.monotonic() < deadline and any(
        t.name == "servercov-snapshots" for t in threading.enumerate()):
    time.sleep(0.02)
print("thread ended" if time.monotonic() < deadline else "thread still running")
"""


@pytest.mark.parametrize("unknown, refusal", [
    (UNKNOWN_COLLECTOR, ["flushes its collector in a way servercov does not know",
                         "Collector.packing_of_2030"]),
    (MISSING_NAME, ["has no CoverageData._current_context",
                    "snapshots and autosave of this process are off"]),
], ids=["unknown-collector", "missing-name"])
def test_a_coverage_servercov_does_not_know_is_refused_in_one_line(tmp_path, unknown, refusal):
    (tmp_path / "work.py").write_text(WORK)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = python_env(PYTHONPATH=str(tmp_path), SERVERCOV_CONTROL=str(tmp_path),
                     SERVERCOV_RUN_DIR=str(run_dir))
    run = subprocess.run([sys.executable, "-c", REFUSED, str(REPO), str(tmp_path), unknown],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "thread ended"
    problems = list(run_dir.glob("problem.*"))
    assert len(problems) == 1
    lines = problems[0].read_text().splitlines()
    assert len(lines) == 1
    for words in refusal:
        assert words in lines[0]
    assert lines[0] in run.stderr  # said on the server's output too
    assert not list(Path(tmp_path).glob("data.servercov-dump.*")), "a dump was written"
    pid = protocol.pid_of(problems[0].name, protocol.problem_file)
    assert pid is not None
    # Registered, never answered: the run's request fails at its deadline, named.
    assert (tmp_path / protocol.answer_file(pid)).read_text() == protocol.REGISTERED_ANSWER
