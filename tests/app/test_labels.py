"""The label check itself: what passes, what is dropped, and the count the run reads."""

from __future__ import annotations

import os

import pytest

from nose2_servercov import protocol
from nose2_servercov.app import labels
from nose2_servercov.engine.data import accounting


@pytest.mark.parametrize("label", ["", "tests/test_api.py::test_get[1-2]", "x" * 300,
                                   "tést_ünïcode", "a b:c/d.e(f)"])
def test_printable_short_labels_without_markup_pass_as_they_are(label):
    assert labels.checked(label) == label


@pytest.mark.parametrize("label", ["x" * 301, "<b>", "a>b", "a&b", 'say "hi"', "tab\there",
                                   "bell\x07", "right-to-left\u202eoverride", "\x1b[31mred"])
def test_others_are_dropped(label, tmp_path, monkeypatch):
    monkeypatch.setenv(protocol.RUN_DIR_VARIABLE, str(tmp_path))
    assert labels.checked(label) == protocol.DROPPED_LABEL


def test_the_count_crosses_into_the_run_folder_and_the_run_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv(protocol.RUN_DIR_VARIABLE, str(tmp_path))
    labels.checked("<first>")  # the count is the process's: read where it stands
    before = accounting.dropped_labels(tmp_path)[0]
    for label in ("<script>", "x" * 5000, "ok", "&amp;"):
        labels.checked(label)
    count, example = accounting.dropped_labels(tmp_path)
    assert count - before == 3
    assert (tmp_path / protocol.labels_file(os.getpid())).stat().st_mode & 0o777 == 0o600
    assert len(example) <= protocol.LABEL_EXAMPLE_CHARS


def test_the_line_shows_the_example_escaped():
    line = accounting.dropped_labels_line(2, "\x1b]0;title\x07</script>")
    assert line.startswith("2 X-Servercov-Context labels were dropped")
    assert line.endswith("the first began '\\x1b]0;title\\x07</script>'")
    assert "\x1b" not in line
