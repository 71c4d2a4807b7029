"""``[servercov] core``: the fastest core that stays exact, said on the start line, and used.

The choice is checked twice: on the start line, and in the server itself,
through coverage's own ``[run] debug = sys`` output (``core: SysMonitor``),
so a start line that claims a core the server does not use fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from nose2_servercov.engine.config import load_config
from nose2_servercov.engine.run import LocalRun
from nose2_servercov.errors import ConfigError
from tests.support import (
    assert_exact,
    assert_no_leftovers,
    make_project,
    plan,
    run_nose2,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(180)

SYSMON = sys.version_info >= (3, 12)
SYSMON_BRANCHES = sys.version_info >= (3, 14)
TRACERS = {"sysmon": "SysMonitor", "ctrace": "CTracer", "pytrace": "PyTracer"}


def rcfile(tmp_path: Path, run: str = "branch = True", servercov: str = "") -> Path:
    path = tmp_path / ".apirc"
    path.write_text(f"[run]\nparallel = True\n{run}\n\n[servercov]\ncommand = {{python}} x.py\n"
                    f"{servercov}\n")
    return path


def chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, run: str = "branch = True",
           servercov: str = "", core_variable: str | None = None) -> str:
    """Return the start line's words for the core a session of this rcfile picks."""
    monkeypatch.delenv("COVERAGE_CORE", raising=False)
    if core_variable is not None:
        monkeypatch.setenv("COVERAGE_CORE", core_variable)
    session = LocalRun(load_config(rcfile(tmp_path, run, servercov)))
    assert session.settings.core == session.core.core  # what the server processes are handed
    return session.core.describe()


def test_auto_picks_sysmon_for_line_coverage_from_312(tmp_path, monkeypatch):
    expected = "core sysmon" if SYSMON else "core ctrace (sys.monitoring needs Python 3.12+)"
    assert chosen(tmp_path, monkeypatch, run="branch = False") == expected


def test_auto_picks_the_c_tracer_for_branch_coverage_before_314_and_says_why(tmp_path,
                                                                            monkeypatch):
    expected = ("core sysmon" if SYSMON_BRANCHES else
                "core ctrace (branch = True needs the C tracer before Python 3.14)" if SYSMON
                else "core ctrace (sys.monitoring needs Python 3.12+)")
    assert chosen(tmp_path, monkeypatch, run="branch = True") == expected


@pytest.mark.parametrize(("run", "servercov", "reason"), [
    ("branch = False\ndynamic_context = test_function", "",
     "dynamic_context = test_function needs the C tracer"),
    ("branch = False\nconcurrency = gevent", "", "concurrency = gevent needs the C tracer"),
    ("branch = False\nconcurrency = thread, eventlet", "",
     "concurrency = eventlet needs the C tracer"),
])
def test_what_sysmon_cannot_measure_gets_the_c_tracer(tmp_path, monkeypatch, run, servercov,
                                                      reason):
    if not SYSMON:
        reason = "sys.monitoring needs Python 3.12+"
    assert chosen(tmp_path, monkeypatch, run=run, servercov=servercov) == f"core ctrace ({reason})"


def test_the_users_own_core_wins_over_auto(tmp_path, monkeypatch):
    assert chosen(tmp_path, monkeypatch, run="branch = False\ncore = pytrace") == (
        "core pytrace ([run] core = pytrace)")
    assert chosen(tmp_path, monkeypatch, run="branch = False\ncore = pytrace",
                  core_variable="ctrace") == "core ctrace (COVERAGE_CORE=ctrace)"
    assert chosen(tmp_path, monkeypatch, run="branch = False",
                  servercov="env = COVERAGE_CORE = pytrace") == (
        "core pytrace (COVERAGE_CORE=pytrace)")


def test_contexts_test_keeps_sysmon(tmp_path, monkeypatch):
    # servercov re-arms sys.monitoring at each switch (test_sysmon_contexts.py).
    expected = "core sysmon" if SYSMON else "core ctrace (sys.monitoring needs Python 3.12+)"
    assert chosen(tmp_path, monkeypatch, run="branch = False",
                  servercov="contexts = test") == expected


def test_a_sysmon_wish_that_sysmon_cannot_honour_gets_the_c_tracer_said_so(tmp_path,
                                                                         monkeypatch):
    reason = ("sys.monitoring needs Python 3.12+" if not SYSMON else
              "dynamic_context = test_function needs the C tracer")
    run = "branch = False\ndynamic_context = test_function"
    assert chosen(tmp_path, monkeypatch, run=run,
                  core_variable="sysmon") == f"core ctrace (COVERAGE_CORE=sysmon, but {reason})"
    assert chosen(tmp_path, monkeypatch, run=run, servercov="core = sysmon") == (
        f"core ctrace ([servercov] core = sysmon, but {reason})")
    if not SYSMON_BRANCHES:
        reason = "branch = True needs the C tracer before Python 3.14" if SYSMON else reason
        assert chosen(tmp_path, monkeypatch, core_variable="sysmon") == (
            f"core ctrace (COVERAGE_CORE=sysmon, but {reason})")


def test_servercov_core_forces_and_wins_over_the_users_variable(tmp_path, monkeypatch):
    for core in ("ctrace", "pytrace"):
        assert chosen(tmp_path, monkeypatch, servercov=f"core = {core}",
                      core_variable="sysmon") == f"core {core}"
    assert chosen(tmp_path, monkeypatch, run="timid = True") == "core pytrace ([run] timid = True)"


def test_bad_core_values_are_refused_before_anything_starts(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"\[servercov\] core: expected auto, ctrace, sysmon, "
                                          r"pytrace, got 'fast'"):
        load_config(rcfile(tmp_path, servercov="core = fast"))
    monkeypatch.setenv("COVERAGE_CORE", "turbo")
    with pytest.raises(ConfigError, match=r"COVERAGE_CORE: expected one of ctrace, sysmon, "
                                          r"pytrace, got 'turbo'"):
        LocalRun(load_config(rcfile(tmp_path)))


def cores_used_by_the_server(project: Path) -> set[str]:
    """Return the tracers coverage's ``debug = sys`` says the measured processes used."""
    text = "".join(p.read_text() for p in project.glob("debug.txt*"))
    return set(re.findall(r"^\s+core: (\w+)$", text, re.M)) - {"-none-"}


@pytest.mark.parametrize("branch", [False, True], ids=["lines", "branches"])
def test_the_start_line_names_the_core_the_server_really_uses(tmp_path, branch):
    project = make_project(tmp_path, run="debug = sys\ndebug_file = debug.txt")
    if not branch:
        rc = project / ".apirc"
        rc.write_text(rc.read_text().replace("branch = True", "branch = False"))
    run = run_nose2(project, COVERAGE_CORE="")  # not the user's: auto decides
    assert run.returncode == 0, run.stderr
    started = servercov_lines(run.stderr)[0]
    core = re.search(r", core (\w+)", started)
    assert core, started
    expected = "sysmon" if SYSMON and (SYSMON_BRANCHES or not branch) else "ctrace"
    assert core[1] == expected, started
    assert started.endswith(f", rcfile {project / '.apirc'}"), started
    if expected == "ctrace":
        assert re.search(r", core ctrace \([^)]+\), rcfile ", started), (
            "the start line must say why not sysmon", started)
    assert cores_used_by_the_server(project) == {TRACERS[expected]}
    assert_exact(project, plan(project))
    assert_no_leftovers(project)
