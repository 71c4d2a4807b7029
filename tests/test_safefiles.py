"""safefiles on a real file system: links are never followed, stale names of ours are replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nose2_servercov import safefiles


def test_a_planted_link_under_a_temporary_name_is_replaced_never_written_through(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    planted = tmp_path / "run.json.123.tmp"
    planted.symlink_to(target)
    safefiles.replace_atomically(tmp_path / "run.json", "{}", planted)
    assert target.read_text() == "keep"
    assert (tmp_path / "run.json").read_text() == "{}"
    assert not (tmp_path / "run.json").is_symlink()
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o600


def test_a_symlinked_folder_is_refused_and_its_target_left_alone(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (tmp_path / ".servercov").symlink_to(theirs)
    with pytest.raises(safefiles.UnsafePlace, match=r"\.servercov is a symlink \(to .*theirs\)"):
        safefiles.private_folder(tmp_path / ".servercov")
    assert theirs.stat().st_mode & 0o777 == 0o755


def test_a_file_where_the_folder_goes_is_refused(tmp_path):
    (tmp_path / ".servercov").write_text("")
    with pytest.raises(safefiles.UnsafePlace, match="is not a folder"):
        safefiles.private_folder(tmp_path / ".servercov")


def test_a_folder_of_ours_is_made_private(tmp_path):
    folder = tmp_path / ".servercov"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    safefiles.private_folder(folder)
    assert folder.stat().st_mode & 0o777 == 0o700


def test_appending_never_follows_a_link(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "problem.1").symlink_to(target)
    with pytest.raises(OSError):
        safefiles.append_line(tmp_path / "problem.1", "a problem")
    assert target.read_text() == "keep"


def test_foreign_names_links_and_not_our_files(tmp_path: Path):
    (tmp_path / "link").symlink_to("nowhere")
    (tmp_path / "ours").write_text("")
    assert safefiles.foreign(tmp_path / "link") == "is a symlink (to nowhere)"
    assert safefiles.foreign(tmp_path / "ours") is None
    assert safefiles.foreign(tmp_path / "absent") is None
