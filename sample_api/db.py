"""Tiny data layer over stdlib sqlite3.

One connection per request (kept on ``flask.g``) because sqlite3 connections must
not be shared between the threads of a threaded server.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Flask, current_app, g

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    uid TEXT PRIMARY KEY,
    username TEXT NOT NULL
)
"""


class DuplicateError(Exception):
    """Raised when a row with the same primary key already exists."""


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def init_db(app: Flask) -> None:
    """Create the schema now and close the request connection after each request."""
    with _connect(app.config["DATABASE"]) as conn:
        conn.execute(SCHEMA)
    conn.close()
    app.teardown_appcontext(_close)


def _close(_exc: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = _connect(current_app.config["DATABASE"])
    return g.db


def list_users() -> list[dict[str, Any]]:
    rows = get_db().execute("SELECT uid, username FROM users ORDER BY uid").fetchall()
    return [dict(row) for row in rows]


def get_user(uid: str) -> dict[str, Any] | None:
    row = get_db().execute("SELECT uid, username FROM users WHERE uid = ?", (uid,)).fetchone()
    return dict(row) if row is not None else None


def create_user(uid: str, username: str) -> dict[str, Any]:
    conn = get_db()
    try:
        with conn:
            conn.execute("INSERT INTO users (uid, username) VALUES (?, ?)", (uid, username))
    except sqlite3.IntegrityError as exc:
        raise DuplicateError(uid) from exc
    return {"uid": uid, "username": username}


def update_user(uid: str, username: str) -> dict[str, Any] | None:
    conn = get_db()
    with conn:
        cur = conn.execute("UPDATE users SET username = ? WHERE uid = ?", (username, uid))
    return {"uid": uid, "username": username} if cur.rowcount else None


def delete_user(uid: str) -> bool:
    conn = get_db()
    with conn:
        cur = conn.execute("DELETE FROM users WHERE uid = ?", (uid,))
    return cur.rowcount > 0
