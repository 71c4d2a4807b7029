"""``contexts = test`` under sys.monitoring: the same contexts as the C tracer's, at sysmon speed.

coverage's sysmon core records each location once and disables its event;
servercov re-arms the events at each context switch.  If that ever stops
working (a coverage release that records differently), the contexts of the
sysmon run lose the lines a later test ran again, and the comparison with
the C tracer's run of the same requests fails here, line for line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.acceptance.test_cores import TRACERS, cores_used_by_the_server
from tests.support import (
    assert_exact,
    assert_no_leftovers,
    make_project,
    plan,
    run_nose2,
    servercov_lines,
    use_core,
)

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring: 3.12+")]

CONTEXTS = """
    command = {python} serve.py {port}
    ready_path = /health/
    shutdown_path = /servercov/shutdown/
    contexts = test
    reports = json
    """


def contexts_run(tmp_path: Path, core: str | None) -> tuple[Path, str, dict]:
    """Run the two-test scenario with ``contexts = test``; return project, start line, contexts."""
    project = make_project(tmp_path / (core or "auto"), servercov=CONTEXTS,
                           run="debug = sys\ndebug_file = debug.txt")
    if sys.version_info < (3, 14):  # sysmon measures branches only from 3.14
        rc = project / ".apirc"
        rc.write_text(rc.read_text().replace("branch = True", "branch = False"))
    if core is not None:
        use_core(project, core)
    run = run_nose2(project, SCENARIO="again", COVERAGE_CORE="")
    assert run.returncode == 0, run.stderr
    assert "no-sysmon-context" not in run.stderr + run.stdout, run.stderr
    assert_exact(project, [*plan(project), ["GET", "/items/7/", None, 200]])
    assert_no_leftovers(project)
    data = CoverageData(str(project / ".coverage"))
    data.read()
    contexts = {str(Path(name).relative_to(project)): {
                    line: sorted(found) for line, found in data.contexts_by_lineno(name).items()}
                for name in data.measured_files()}
    return project, servercov_lines(run.stderr)[0], contexts


def test_contexts_under_sysmon_equal_those_under_the_c_tracer(tmp_path):
    sysmon_project, started, under_sysmon = contexts_run(tmp_path, "sysmon")
    assert re.search(r", core sysmon, rcfile ", started), started
    assert cores_used_by_the_server(sysmon_project) == {TRACERS["sysmon"]}
    ctrace_project, _, under_ctrace = contexts_run(tmp_path, "ctrace")
    assert cores_used_by_the_server(ctrace_project) == {TRACERS["ctrace"]}
    assert under_sysmon.keys() == under_ctrace.keys()
    for name, by_line in under_ctrace.items():
        assert under_sysmon[name] == by_line, name  # line for line, context for context
    # The comparison means something only if a line ran under both tests.
    shared = [line for by_line in under_ctrace.values() for line, found in by_line.items()
              if {"test_plan.PlanTest.test_plan",
                  "test_plan.PlanTest.test_scenario_extra"} <= set(found)]
    assert shared, under_ctrace


def test_auto_with_contexts_test_picks_sysmon(tmp_path):
    project, started, contexts = contexts_run(tmp_path, None)
    assert re.search(r", core sysmon, rcfile ", started), started
    assert cores_used_by_the_server(project) == {TRACERS["sysmon"]}
    assert any("test_plan.PlanTest.test_scenario_extra" in found
               for by_line in contexts.values() for found in by_line.values())
