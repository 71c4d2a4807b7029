"""``servercov run`` end to end: real test commands against a real server, real data files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from tests.support import (
    CORES,
    assert_exact,
    assert_no_leftovers,
    make_project,
    plan,
    run_servercov,
    servercov_lines,
    stray_data_files,
    use_core,
)

pytestmark = pytest.mark.timeout(180)

CURL_SCRIPT = """#!/bin/sh
# A seed-style smoke test: curl calls against the server servercov started.
set -e
curl -sf "$SERVERCOV_URL/health/" > /dev/null
curl -sf "$SERVERCOV_URL/items/1/" > /dev/null
curl -sf "$SERVERCOV_URL/items/2/" > /dev/null
test "$(curl -s -o /dev/null -w '%{http_code}' "$SERVERCOV_URL/items/1000/")" = 404
curl -sf -X POST -H 'Content-Type: application/json' -d '{"a": 1}' \
    "$SERVERCOV_URL/echo/" > /dev/null
curl -sf "$SERVERCOV_URL/once/a/" > /dev/null
test "$(curl -s -o /dev/null -w '%{http_code}' "$SERVERCOV_URL/missing/")" = 404
"""


def check_clean(project):
    assert stray_data_files(project) == []
    assert not (project / ".servercov").exists()
    assert_no_leftovers(project)


def test_run_exits_with_the_commands_status(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert run.returncode == 7, run.stderr
    assert (project / "coverage.json").exists()  # the server's start-up was measured
    check_clean(project)


def test_run_of_a_command_that_does_not_exist_starts_nothing(tmp_path):
    project = make_project(tmp_path)
    run = run_servercov(project, "run", "--", "./no-such-test-runner", "-v")
    assert run.returncode == 127
    assert servercov_lines(run.stderr) == [
        "servercov: error: cannot run './no-such-test-runner': no such command "
        "(or not executable)"]
    assert "Traceback" not in run.stderr
    assert not (project / ".coverage").exists()
    check_clean(project)


@pytest.mark.parametrize("runner", ["unittest discover", "nose2", "pytest", "curl script"])
def test_run_works_with_any_test_command(tmp_path, runner):
    project = make_project(tmp_path)
    requests = plan(project)
    if runner == "unittest discover":
        command = [sys.executable, "-m", "unittest", "discover", "-s", "."]
    elif runner == "nose2":  # an old-style suite run by its own runner, without the plugin
        command = [sys.executable, "-m", "nose2"]
    elif runner == "pytest":
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plan.py"]
    else:
        if shutil.which("curl") is None:
            pytest.fail("curl is not installed: CI must install it (apt-get install curl)")
        script = project / "smoke.sh"
        script.write_text(CURL_SCRIPT)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        command = ["./smoke.sh"]  # the same requests as the plan
    run = run_servercov(project, "run", "--", *command)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_exact(project, requests)
    check_clean(project)


@pytest.mark.parametrize("subcommand", [None, "run", "serve", "snapshot", "stop"])
def test_help_shows_an_example(tmp_path, subcommand):
    run = run_servercov(tmp_path, *[subcommand] * (subcommand is not None), "--help")
    assert run.returncode == 0
    assert "example" in run.stdout
    assert "servercov " + (subcommand or "run") in run.stdout.split("example")[1]


def test_the_console_script_is_the_same_command(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "servercov")
    if not os.path.exists(script):
        pytest.skip("the package is not installed with its console script")
    run = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "servercov run" in run.stdout


@pytest.mark.parametrize("core", ["auto"] + [core for core in CORES if core == "sysmon"])
def test_run_with_autosave_is_exact_and_leaves_no_dump_behind(tmp_path, core):
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        autosave = 0.2
        reports = json
        """)
    use_core(project, core)
    test_then_idle = f"{sys.executable} -m unittest && sleep 1"  # time for a few autosaves
    run = run_servercov(project, "run", "--", "sh", "-c", test_then_idle)
    assert run.returncode == 0, run.stderr
    assert "combined 2 data files" in run.stderr  # the process's own, and its autosave dump
    assert_exact(project, plan(project))
    check_clean(project)


@pytest.fixture
def tmpfs_folder(tmp_path):
    """A tmpfs of its own, as /tmp often is while the project is on disk (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.parametrize("stop", ["autosave", "signal"])
def test_a_temporary_folder_on_another_file_system_loses_nothing(tmp_path, tmpfs_folder, stop):
    """The dumps are written in the run folder (TMPDIR) and moved beside the data file."""
    project = make_project(tmp_path, servercov="""
        command = {python} serve.py {port}
        ready_path = /health/
        reports = json
        """ + ("shutdown_path = /servercov/shutdown/\nautosave = 0.2\n" if stop == "autosave"
               else "stop_signal = TERM\n"))
    assert os.stat(tmpfs_folder).st_dev != os.stat(project).st_dev
    then_idle = f"{sys.executable} -m unittest && sleep 1"  # time for a few autosaves
    run = run_servercov(project, "run", "--", "sh", "-c", then_idle, TMPDIR=str(tmpfs_folder))
    assert run.returncode == 0, run.stderr
    # Before the move across file systems, each dump failed with EXDEV: the
    # autosave dump was missing and the save before the signal waited 5 s.
    assert not any(word in run.stderr for word in ("lost", "cannot write", "did not save")), \
        run.stderr
    if stop == "autosave":
        assert "combined 2 data files" in run.stderr, run.stderr
    assert_exact(project, plan(project))
    check_clean(project)
    assert not list(project.glob(".servercov-move.*")) and not os.listdir(tmpfs_folder)
