"""The data files' names on disk: the pids in them, the control folder, copies to combine."""

from __future__ import annotations

from pathlib import Path

import pytest

from nose2_servercov import protocol
from nose2_servercov.engine import data
from nose2_servercov.engine.data import datafiles


@pytest.fixture
def settings(tmp_path):
    folder = tmp_path / "a [project]"  # glob's special characters in the folder's name
    folder.mkdir()
    rcfile = folder / ".apirc"
    rcfile.write_text("[run]\ndata_file = .cov\n")
    return data.server_settings(rcfile)


@pytest.mark.parametrize(("suffix", "pid"), [
    (".myhost.pid4242.XabcDEFx", 4242),  # coverage's parallel suffix
    (".my.host.7.XabcDEFx", 7),  # coverage before "pid" was in the suffix
    (protocol.DUMP_INFIX + "99", 99),  # a dump
    (".servercov-remote.api-1", None),
])
def test_the_pid_is_read_from_each_kind_of_name(settings, suffix, pid):
    assert datafiles.pid_of_data_file(settings.data_file + suffix, settings) == pid


def test_only_the_per_process_files_of_the_data_file_are_listed(settings):
    folder = Path(settings.data_file).parent
    for name in (".cov", ".cov.h.pid1.Xax", ".cov.h.pid2.Xbx", ".covx", "other.cov.h.pid3"):
        (folder / name).write_text("")
    assert [Path(name).name for name in datafiles.data_files(settings)] == [
        ".cov.h.pid1.Xax", ".cov.h.pid2.Xbx"]


def test_the_exchange_files_are_erased_and_a_serves_state_kept(settings):
    control = datafiles.control_dir(settings)
    assert control == Path(settings.data_file).parent / protocol.CONTROL_FOLDER
    control.mkdir()
    for name in (protocol.REQUEST_FILE, protocol.REQUEST_TEMPORARY, protocol.answer_file(5),
                 protocol.wake_file(5), protocol.dump_temporary(5), protocol.SERVE_STATE_FILE):
        (control / name).write_text("")
    datafiles.erase_control_files(settings)
    assert [path.name for path in control.iterdir()] == [protocol.SERVE_STATE_FILE]
    (control / protocol.SERVE_STATE_FILE).unlink()
    (control / protocol.answer_file(6)).write_text("")
    datafiles.erase_control_files(settings)
    assert not control.exists()  # empty: the folder goes too


def test_copies_leave_out_a_file_gone_meanwhile(settings, tmp_path):
    folder = Path(settings.data_file).parent
    (folder / ".cov.h.pid1.Xax").write_text("one")
    (folder / ".cov.h.pid3.Xcx").write_text("three")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    names = [str(folder / ".cov.h.pid1.Xax"), str(folder / ".cov.h.pid2.Xbx"),
             str(folder / ".cov.h.pid3.Xcx")]
    copies = datafiles.copy_data_files(names, str(scratch))
    assert [Path(name).read_text() for name in copies] == ["one", "three"]
    assert all(Path(name).parent == scratch for name in copies)


def test_a_coverage_over_a_scratch_file_leaves_the_settings_alone(settings, tmp_path):
    scratch = str(tmp_path / "combined")
    cov = data.coverage_for(settings, scratch)
    assert cov.config.data_file == scratch
    assert settings.data_file.endswith(".cov")
    assert data.coverage_for(settings).config.data_file == settings.data_file
