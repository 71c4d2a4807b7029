"""The accounting's rules on real files: registrations, exit markers, data files, problems."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import coverage
import pytest
from coverage import CoverageData

from nose2_servercov.engine import data
from nose2_servercov.engine.data import accounting
from nose2_servercov.engine.data.accounting import StopFacts


@pytest.fixture
def run(tmp_path):
    (tmp_path / "project").mkdir()
    rcfile = tmp_path / "project" / ".apirc"
    rcfile.write_text("[run]\nparallel = True\n")
    settings = data.server_settings(rcfile)
    run_dir = accounting.make_run_dir(tmp_path)
    return run_dir, settings


def register(run_dir: Path, pid: int, *, ppid: int = 1, exe: str = "/usr/bin/python3",
             argv: tuple[str, ...] = ("python", "serve.py")) -> None:
    (run_dir / f"proc.{pid}").write_text(json.dumps(
        {"pid": pid, "ppid": ppid, "argv": list(argv), "start": 1, "exe": exe}))


def mark_exit(run_dir: Path, pid: int, measured: int) -> None:
    (run_dir / f"exit.{pid}").write_text(json.dumps({"measured": measured}))


def data_file(settings, pid: int, *, dump: bool = False, suffix: str = "Xtest") -> str:
    host = socket.gethostname().replace(".", "_")
    name = (f"{settings.data_file}{data.DUMP_INFIX}{pid}" if dump
            else f"{settings.data_file}.{host}.pid{pid}.{suffix}")
    found = CoverageData(name)
    found.add_lines({os.path.abspath(coverage.__file__): [1, 2]})
    found.write()
    return name


def test_the_run_folder_is_private(run):
    run_dir, _ = run
    assert run_dir.stat().st_mode & 0o777 == 0o700


def test_a_process_that_saved_is_fine_and_its_file_combined(run):
    run_dir, settings = run
    register(run_dir, 100)
    mark_exit(run_dir, 100, 3)
    name = data_file(settings, 100)
    found = accounting.account(run_dir, settings, StopFacts())
    assert (found.losses, found.warnings, found.good_files) == ([], [], [name])


def test_a_process_that_measured_nothing_and_exited_is_fine(run):
    run_dir, settings = run
    register(run_dir, 100)
    mark_exit(run_dir, 100, 0)
    found = accounting.account(run_dir, settings, StopFacts())
    assert found.losses == [] and found.measured_nothing == 1


def test_a_process_gone_without_exit_or_data_is_lost(run):
    run_dir, settings = run
    register(run_dir, 100)
    found = accounting.account(run_dir, settings, StopFacts(alive_at_stop=frozenset({100})))
    assert found.lost_data
    assert found.losses == ["pid 100 (python serve.py) left no coverage data: killed by "
                            "SIGKILL (or by its parent) before it could save"]


def test_the_cause_of_a_loss(run):
    run_dir, settings = run
    register(run_dir, 100)  # the server command itself, killed by SIGKILL
    register(run_dir, 101, ppid=102)  # a child of a parent that stopped the orderly way
    register(run_dir, 102)
    mark_exit(run_dir, 102, 2)
    data_file(settings, 102)
    register(run_dir, 103)  # gone before the stop began
    facts = StopFacts(leader_pid=100, leader_status=-9, alive_at_stop=frozenset({101, 102}))
    losses = accounting.account(run_dir, settings, facts).losses
    assert [line.split(": ", 1)[1] for line in losses] == [
        "killed by SIGKILL before it could save",
        "likely killed by its parent (pid 102) as that one stopped: a supervisor that "
        "SIGKILLs its children on SIGTERM, as Django's autoreloader does",
        "ended while the tests ran without saving: killed by SIGKILL (or by its parent), or "
        "ended through os._exit without coverage's patch"]


def test_a_dump_counts_as_data_but_a_kill_after_an_autosave_is_a_warning(run):
    run_dir, settings = run
    register(run_dir, 100)
    register(run_dir, 101)
    data_file(settings, 100, dump=True)  # asked to save before the stop signal
    data_file(settings, 101, dump=True)  # only an autosave dump
    found = accounting.account(run_dir, settings,
                               StopFacts(dumped_before_signal=frozenset({100})))
    assert found.losses == []
    assert len(found.warnings) == 1
    assert found.warnings[0].startswith("pid 101 (python serve.py) ended without saving: "
                                        "what it ran after its last autosave or snapshot")


def test_a_process_that_said_it_measured_nothing_before_the_signal_lost_nothing(run):
    run_dir, settings = run
    register(run_dir, 100)  # gunicorn's master, say: answered "empty", then KILLed
    register(run_dir, 101)  # answered "empty", then reached its exit having measured code
    mark_exit(run_dir, 101, 2)
    facts = StopFacts(leader_pid=100, leader_status=-9, step="SIGKILL", stop_signal="SIGKILL",
                      alive_at_stop=frozenset({100, 101}),
                      empty_before_signal=frozenset({100, 101}))
    found = accounting.account(run_dir, settings, facts)
    assert found.measured_nothing == 1
    assert [line.split(" (", 1)[0] for line in found.losses] == ["pid 101"]
    # Without that answer, the same kill is a loss.
    again = accounting.account(run_dir, settings, StopFacts(
        leader_pid=100, leader_status=-9, step="SIGKILL", alive_at_stop=frozenset({100})))
    assert [line.split(" (", 1)[0] for line in again.losses] == ["pid 100", "pid 101"]


def test_an_unreadable_file_goes_only_if_a_dump_written_on_request_holds_its_data(run):
    run_dir, settings = run
    for pid in (100, 101):
        register(run_dir, pid)
        Path(data_file(settings, pid, suffix="Xbroken")).write_text("not sqlite" * 100)
    dump = data_file(settings, 100, dump=True)
    # Both answered "dumped" before the signal; only 100's dump is on disk.
    found = accounting.account(run_dir, settings,
                               StopFacts(dumped_before_signal=frozenset({100, 101})))
    assert found.good_files == [dump]
    assert found.warnings[0].startswith("pid 100 (python serve.py): its data file ")
    assert found.warnings[0].endswith("not combined, its data written just before the stop "
                                      "signal is")
    assert len(found.losses) == 1 and found.losses[0].startswith("pid 101 (python serve.py) "
                                                                 "lost its data: ")
    assert not Path(f"{settings.data_file}.servercov-unreadable.pid100").exists()
    assert Path(f"{settings.data_file}.servercov-unreadable.pid101").exists()


def test_empty_and_unreadable_files_are_named_and_set_aside(run):
    run_dir, settings = run
    register(run_dir, 100)
    mark_exit(run_dir, 100, 2)
    empty = data_file(settings, 100, suffix="Xempty")
    Path(empty).write_bytes(b"")
    good = data_file(settings, 101)  # a process that never registered: its data counts
    broken = data_file(settings, 102, suffix="Xbroken")
    Path(broken).write_text("not sqlite" * 100)
    found = accounting.account(run_dir, settings, StopFacts())
    assert found.good_files == [good]
    assert len(found.losses) == 2
    assert "is empty (0 bytes)" in found.losses[0] and "pid 100 (python" in found.losses[0]
    assert "cannot be read by coverage" in found.losses[1]
    assert not Path(empty).exists() and not Path(broken).exists()
    assert Path(f"{settings.data_file}.servercov-unreadable.pid102").exists()


def test_the_uwsgi_master_never_runs_atexit_and_is_not_a_loss(run):
    run_dir, settings = run
    register(run_dir, 100, exe="/venv/bin/uwsgi", argv=("uwsgi", "--master"))
    found = accounting.account(run_dir, settings, StopFacts(leader_pid=100, leader_status=0))
    assert found.losses == []
    killed = accounting.account(run_dir, settings, StopFacts(leader_pid=100, leader_status=-9))
    assert killed.lost_data


def test_every_problem_a_process_reported_is_a_loss(run):
    run_dir, settings = run
    (run_dir / "problem.55").write_text("coverage is not installed for /usr/bin/python3: "
                                        "this process is not measured\n")
    found = accounting.account(run_dir, settings, StopFacts())
    assert found.losses == ["pid 55: coverage is not installed for /usr/bin/python3: this "
                            "process is not measured"]
