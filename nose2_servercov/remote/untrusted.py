"""What an agent sends is untrusted: text escaped before it is printed, data files checked.

``servercov collect`` reads answers from hosts it does not control; an agent
may be broken or hostile.  Two things follow, both here:

- :func:`shown`: everything from an agent that reaches the terminal (file
  names, error bodies, headers, URLs) has its control characters escaped and
  its length bounded, so an agent can neither drive the terminal with escape
  sequences nor print a 40 MB line;
- :func:`check_data_file`: a data file is an SQLite database of the agent's
  making, and SQLite runs what the file says: a ``file`` "table" that is a
  VIEW over a cross join expands to millions of rows when coverage reads it.
  So before coverage opens it, the file is checked read-only: real tables
  (no views, triggers or virtual tables), coverage's own tables present, and
  bounded rows, path, context and line-bitmap lengths.
"""

from __future__ import annotations

import contextlib
import sqlite3
import unicodedata
import urllib.parse

SHOWN_CHARACTERS = 300  # of one piece of an agent's text on a line
MAX_SCHEMA_ENTRIES = 64  # coverage's schema has about a dozen
MAX_PATH = 4096  # characters of a measured file's path (PATH_MAX)
MAX_CONTEXT = 4096  # characters of a context label
MAX_NUMBITS = 1 << 20  # bytes of one file's line bitmap: 8 million lines
# Coverage's schema (version 7): the tables a data file of coverage has.
COVERAGE_TABLES = ("coverage_schema", "meta", "file", "context", "line_bits", "arc", "tracer")
MAX_ROWS = {"file": 200_000, "context": 200_000, "line_bits": 10_000_000,
            "arc": 50_000_000, "meta": 100, "tracer": 200_000, "coverage_schema": 10}


def _escaped(char: str) -> str:
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
            else f"\\U{code:08x}"
    return char


def shown(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """Return ``text`` fit for one terminal line: control characters escaped, at most ``limit``."""
    head = text[:limit]
    escaped = "".join(_escaped(char) for char in head)
    if len(text) > limit:
        escaped += f"... ({len(text)} characters)"
    return escaped


def _scalar(connection: sqlite3.Connection, query: str) -> int:
    value = connection.execute(query).fetchone()[0]
    return int(value or 0)


def _schema_problem(connection: sqlite3.Connection) -> str | None:
    """Return why the file's schema is not coverage's own, None if it is."""
    entries = connection.execute(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master").fetchmany(
        MAX_SCHEMA_ENTRIES + 1)
    if len(entries) > MAX_SCHEMA_ENTRIES:
        return f"its schema has over {MAX_SCHEMA_ENTRIES} entries"
    tables = set()
    for kind, name, sql in entries:
        if kind not in ("table", "index"):
            return f"{shown(str(name), 80)} is a {shown(str(kind), 20)}, not a table"
        if kind == "table" and str(sql).lstrip().upper().startswith("CREATE VIRTUAL"):
            return f"{shown(str(name), 80)} is a virtual table, not a table"
        if kind == "table":
            tables.add(name)
    missing = [name for name in COVERAGE_TABLES if name not in tables]
    if missing:
        return f"no {', '.join(missing)} table{'s' if len(missing) > 1 else ''} of coverage's"
    return None


def _size_problem(connection: sqlite3.Connection) -> str | None:
    """Return which table or value is over its bound, None if none is."""
    for table, limit in MAX_ROWS.items():
        rows = _scalar(connection, f"SELECT count(*) FROM (SELECT 1 FROM {table} "
                                   f"LIMIT {limit + 1})")
        if rows > limit:
            return f"its {table} table has over {limit} rows"
    bounds = (("path", "file", MAX_PATH, "characters"),
              ("context", "context", MAX_CONTEXT, "characters"),
              ("numbits", "line_bits", MAX_NUMBITS, "bytes"))
    for column, table, limit, unit in bounds:
        longest = _scalar(connection, f"SELECT max(length({column})) FROM {table}")
        if longest > limit:
            return f"a {column} in its {table} table has {longest} {unit}, over {limit}"
    return None


def check_data_file(path: str) -> str | None:
    """Return why ``path`` is not a coverage data file fit to combine, None if it is one.

    Opened read-only, never by coverage, before the checks pass.
    """
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        return f"not an SQLite file: {exc}"
    with contextlib.closing(connection):
        try:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA trusted_schema = OFF")
            return _schema_problem(connection) or _size_problem(connection)
        except sqlite3.Error as exc:
            return f"not a coverage data file: {shown(str(exc), 120)}"
