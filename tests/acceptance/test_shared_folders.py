"""A data folder other users can write: another real local user attacks it, servercov holds.

The test makes a throwaway user (``useradd``, removed at the end) who acts
through ``setpriv`` in a folder of mode 1777, as ``/tmp`` is: a symlinked or
foreign ``.servercov`` is refused in one line before anything starts, links
planted under servercov's temporary names are never written through, a data
file of that user is never combined, and ``servercov stop`` never claims a
final report that failed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    end_process,
    make_project,
    measured_lines,
    python_env,
    run_nose2,
    run_servercov,
    running_serve,
    serve_state,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(240)

PRECIOUS = "root's own file: never to be written by servercov\n"


@pytest.fixture(scope="module")
def other_user() -> Iterator[pwd.struct_passwd]:
    """A second local user, made for these tests and removed after them."""
    reason = ("needs root to make a second local user" if os.geteuid() != 0 else
              "needs useradd, userdel and setpriv" if not all(
                  shutil.which(tool) for tool in ("useradd", "userdel", "setpriv")) else "")
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    name = f"sctest{os.getpid()}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, timeout=60)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, timeout=60)


def as_user(user: pwd.struct_passwd, *command: str) -> None:
    """Run ``command`` as ``user`` (no groups of ours), as that user would at a shell."""
    subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                    "--clear-groups", *command], check=True, timeout=60)


def as_user_command(user: pwd.struct_passwd, *command: str) -> str:
    """Return the shell words that run ``command`` as ``user``."""
    return " ".join(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                     "--clear-groups", *command])


@pytest.fixture
def shared() -> Iterator[Path]:
    """The scenario project in a folder of mode 1777 (as /tmp), outside pytest's 0700 tmp."""
    outer = Path(tempfile.mkdtemp(prefix="servercov-shared-"))
    try:
        outer.chmod(0o755)
        project = make_project(outer)
        project.chmod(0o1777)
        yield project
        assert_no_leftovers(project)
    finally:
        shutil.rmtree(outer, ignore_errors=True)


def precious_file(folder: Path) -> Path:
    """A root-owned file that links planted by the other user point to."""
    path = folder / "precious"
    path.write_text(PRECIOUS)
    path.chmod(0o644)
    return path


def assert_untouched(path: Path) -> None:
    assert path.read_text() == PRECIOUS
    assert path.stat().st_mode & 0o777 == 0o644


FRONT_ENDS = {
    "run": lambda project: run_servercov(project, "run", "--", sys.executable, "-c", "pass"),
    "serve": lambda project: run_servercov(project, "serve", timeout=60),
    "nose2": lambda project: run_nose2(project, "test_plan"),
    "pytest": lambda project: subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--servercov", "test_plan.py"],
        cwd=project, env=python_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT),
}


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_a_symlinked_control_folder_is_refused_in_one_line(shared, other_user, front_end):
    as_user(other_user, "mkdir", str(shared / "theirs"))
    as_user(other_user, "ln", "-s", "theirs", str(shared / ".servercov"))
    run = FRONT_ENDS[front_end](shared)
    lines = servercov_lines(run.stderr)
    assert run.returncode != 0, run.stderr
    assert lines[-1].startswith("servercov: error: "), run.stderr
    assert f"{shared / '.servercov'} is a symlink (to theirs): refused" in lines[-1]
    assert "server started" not in run.stderr  # refused before anything started
    assert list((shared / "theirs").iterdir()) == []


def test_a_control_folder_of_another_user_is_refused_and_its_links_never_followed(
        shared, other_user):
    precious = precious_file(shared.parent)
    folder = shared / ".servercov"
    as_user(other_user, "mkdir", "-m", "777", str(folder))
    for name in ("run.lock", "run.json", "serve.json", "request.tmp"):
        as_user(other_user, "ln", "-s", str(precious), str(folder / name))
    run = run_servercov(shared, "run", "--", sys.executable, "-c", "pass")
    lines = servercov_lines(run.stderr)
    assert run.returncode != 0, run.stderr
    assert lines[-1].startswith("servercov: error: "), run.stderr
    assert (f"{folder} belongs to user {other_user.pw_name} (uid {other_user.pw_uid}), "
            "not to this user (user root (uid 0)): refused") in lines[-1]
    assert_untouched(precious)
    assert folder.stat().st_mode & 0o777 == 0o777  # not even chmod-ed


# Plants links to a root-owned file under the temporary names the process about to run
# will use (its pid is this one's: exec keeps it), then becomes that servercov command.
PLANT_THEN_EXEC = """
import os, sys
folder, target, names = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(folder, mode=0o700, exist_ok=True)
for name in names.split(","):
    os.symlink(target, os.path.join(folder, name.format(pid=os.getpid())))
os.execv(sys.executable, [sys.executable, "-m", "nose2_servercov", *sys.argv[4:]])
"""
SERVE_NAMES = "run.json.{pid}.tmp,serve.json.{pid}.tmp,request.tmp"
SNAPSHOT_NAMES = "snapshot.{pid}.request.tmp,snapshot.{pid}.answer.tmp"
STOP_NAMES = "stop.{pid}.request.tmp,stop.{pid}.answer.tmp"


def planted(project: Path, precious: Path, names: str, *args: str) -> list[str]:
    return [sys.executable, "-c", PLANT_THEN_EXEC, str(project / ".servercov"),
            str(precious), names, *args]


def test_links_planted_under_servercovs_temporary_names_are_never_written_through(tmp_path):
    project = make_project(tmp_path)
    precious = precious_file(tmp_path)
    with open(project / "serve.log", "w") as log:
        serve = subprocess.Popen(planted(project, precious, SERVE_NAMES, "serve"), cwd=project,
                                 env=python_env(), stdout=log, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)
        try:
            serve_state(project, serve)
            snapshot = subprocess.run(planted(project, precious, SNAPSHOT_NAMES, "snapshot"),
                                      cwd=project, env=python_env(), capture_output=True,
                                      text=True, timeout=RUN_TIMEOUT)
            assert snapshot.returncode == 0, snapshot.stderr
            stop = subprocess.run(planted(project, precious, STOP_NAMES, "stop"), cwd=project,
                                  env=python_env(), capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT)
            assert stop.returncode == 0, stop.stderr
            assert "stopped and wrote its final reports" in stop.stderr
            assert end_process(serve) == 0, (project / "serve.log").read_text()
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, 9)
                serve.wait(10)
    assert_untouched(precious)
    assert_no_leftovers(project)


def foreign_data_file(folder: Path, project: Path) -> Path:
    """Data that no test ran: line 9999 of the app, as branch data like the run's."""
    path = folder / "evil-data"
    data = CoverageData(str(path))
    data.add_arcs({str(project / "webapp" / "__init__.py"): {(-1, 9999), (9999, -1)}})
    data.write()
    path.chmod(0o644)
    return path


def test_a_data_file_of_another_user_is_named_and_never_combined(shared, other_user):
    evil = foreign_data_file(shared.parent, shared)
    dropped = shared / ".coverage.evil.pid99999.X1x"
    command = as_user_command(other_user, "cp", str(evil), str(dropped))
    run = run_servercov(shared, "run", "--", "sh", "-c", command)
    assert run.returncode == 0, run.stderr
    named = [line for line in servercov_lines(run.stderr) if str(dropped) in line]
    assert named == [f"servercov: warning: {dropped} belongs to user {other_user.pw_name} "
                     f"(uid {other_user.pw_uid}), not to this user (user root (uid 0)): "
                     "never combined (named like this run's data files, in a folder another "
                     "user can write to)"], run.stderr
    measured = measured_lines(shared / ".coverage", shared / "webapp")
    assert measured and 9999 not in measured["__init__.py"]
    assert dropped.stat().st_uid == other_user.pw_uid  # left as it was, for a look


def test_a_data_file_link_planted_during_the_run_is_refused_never_written_through(
        shared, other_user):
    precious = precious_file(shared.parent)
    data_file = shared / ".coverage"
    command = as_user_command(other_user, "ln", "-s", str(precious), str(data_file))
    run = run_servercov(shared, "run", "--", "sh", "-c", command)
    lines = servercov_lines(run.stderr)
    assert run.returncode != 0, run.stderr
    assert lines[-1] == (f"servercov: error: [run] data_file {data_file} is a symlink (to "
                         f"{precious}): refused, never read nor written through; remove it "
                         "and run again"), run.stderr
    assert_untouched(precious)


def test_stop_after_a_failed_final_report_says_so_and_fails(tmp_path):
    project = make_project(tmp_path)
    with running_serve(project) as serve:
        serve_state(project, serve)
        html = project / "htmlcov"
        if html.is_dir():
            shutil.rmtree(html)
        html.write_text("a file where the html report's folder goes\n")
        stop = run_servercov(project, "stop")
        status = end_process(serve)
    assert stop.returncode != 0, stop.stderr
    assert "wrote its final reports" not in stop.stderr
    lines = servercov_lines(stop.stderr)
    assert lines[-1].startswith("servercov: error: the serve (pid "), stop.stderr
    assert "stopped, but did not write its final reports (exit status 1; why is above)" in lines[-1]
    assert any("html report could not be written" in line for line in lines), stop.stderr
    assert status != 0
    assert_no_leftovers(project)
