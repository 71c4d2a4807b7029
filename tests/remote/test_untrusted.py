"""What an agent sends, judged before it is printed or combined: real SQLite files, real text.

Each bad data file is made here with sqlite3 or coverage itself, the way a
broken or hostile agent could make it; :func:`check_data_file` must name what
is wrong without letting coverage (or SQLite's views) run over it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from coverage import CoverageData

from nose2_servercov.remote.untrusted import check_data_file, shown


def coverage_file(path: Path, *, branch: bool = True) -> Path:
    data = CoverageData(str(path))
    if branch:
        data.add_arcs({"/srv/app/views.py": [(-1, 1), (1, 2), (2, -1)]})
    else:
        data.add_lines({"/srv/app/views.py": [1, 2]})
    data.write()
    return path


def altered(path: Path, script: str) -> Path:
    with sqlite3.connect(path) as connection:
        connection.executescript(script)
    connection.close()
    return path


def test_a_data_file_of_coverage_passes(tmp_path):
    assert check_data_file(str(coverage_file(tmp_path / "lines", branch=False))) is None
    assert check_data_file(str(coverage_file(tmp_path / "arcs"))) is None


@pytest.mark.parametrize(("script", "refusal"), [
    ("CREATE TRIGGER t AFTER INSERT ON meta BEGIN DELETE FROM file; END;",
     "t is a trigger, not a table"),
    ("DROP TABLE context; CREATE VIEW context AS SELECT 1 AS id, 'x' AS context;",
     "context is a view, not a table"),
    ("DROP TABLE tracer;", "no tracer table of coverage's"),
    ("DROP TABLE arc; DROP TABLE tracer;", "no arc, tracer tables of coverage's"),
    ("INSERT INTO context (context) VALUES (printf('%.5000c', 'x'));",
     "a context in its context table has 5000 characters, over 4096"),
    ("INSERT INTO file (path) VALUES ('/srv/b.py');"
     "INSERT INTO line_bits (file_id, context_id, numbits) "
     "VALUES ((SELECT id FROM file WHERE path = '/srv/b.py'), 1, zeroblob(2000000));",
     "a numbits in its line_bits table has 2000000 bytes, over 1048576"),
    ("CREATE TABLE t (x);" + "".join(f"CREATE INDEX i{n} ON t (x);" for n in range(70)),
     "its schema has over 64 entries"),
])
def test_what_is_not_coverage_data_is_named(tmp_path, script, refusal):
    path = altered(coverage_file(tmp_path / "data"), script)
    assert check_data_file(str(path)) == refusal


def test_a_file_that_is_not_sqlite_is_named(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x1b[2J not a database " * 100)
    assert check_data_file(str(path)) == "not a coverage data file: file is not a database"


def test_too_many_rows_are_named_without_reading_them_all(tmp_path):
    path = altered(coverage_file(tmp_path / "data"), """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200001)
        INSERT INTO file (path) SELECT '/srv/' || i || '.py' FROM n;
        """)
    assert check_data_file(str(path)) == "its file table has over 200000 rows"


def test_shown_escapes_control_characters_and_bounds_the_length():
    assert shown("caf\u00e9 ok") == "caf\u00e9 ok"
    assert shown("\x1b[2J\x1b]0;t\x07\r\n\t") == "\\x1b[2J\\x1b]0;t\\x07\\r\\n\\t"
    assert shown("\u202eevil\u2028") == "\\u202eevil\\u2028"  # bidi override, line separator
    assert shown("\x9b31m") == "\\x9b31m"  # the 8-bit CSI
    assert shown("a" * 20_000_000, 10) == "aaaaaaaaaa... (20000000 characters)"
