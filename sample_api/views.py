"""Versioned JSON views, shaped like the original recipe's responses.

Everything lives on one blueprint under ``/0.0`` so the auth check can be a single
``before_request`` hook; only the health route, which readiness probes call
without credentials, is exempt.
"""

from __future__ import annotations

import csv
import hmac
import io
import re
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from sample_api import db

api = Blueprint("api", __name__, url_prefix="/0.0")

UID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_USERNAME = 64
PUBLIC_ENDPOINTS = frozenset({"api.health"})


def _ok(data: Any, status: str, code: int = 200) -> tuple[Response, int]:
    return jsonify(data=data, success=True, status=status), code


@api.before_request
def require_token() -> None:
    """Reject requests without the right ``X-Auth-Token`` (constant-time compare)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    given = request.headers.get("X-Auth-Token", "")
    expected = current_app.config["API_TOKEN"]
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        abort(401, description="missing or invalid X-Auth-Token")


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="request body must be a JSON object")
    return body


def _username(body: dict[str, Any]) -> str:
    value = body.get("username")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_USERNAME:
        abort(400, description=f"'username' must be a non-empty string of <= {MAX_USERNAME} chars")
    return value.strip()


def _found(user: dict[str, Any] | None, uid: str) -> dict[str, Any]:
    if user is None:
        abort(404, description=f"user {uid!r} not found")
    return user


@api.get("/health/")
def health() -> Response:
    """Readiness probe: no auth, no database."""
    return jsonify(status="ok")


@api.get("/users/")
def list_users() -> tuple[Response, int]:
    return _ok(db.list_users(), "list")


@api.post("/users/")
def create_user() -> tuple[Response, int]:
    body = _json_body()
    uid = body.get("uid")
    if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
        abort(400, description="'uid' must be 1-64 characters from [A-Za-z0-9_.-]")
    username = _username(body)
    try:
        user = db.create_user(uid, username)
    except db.DuplicateError:
        abort(409, description=f"user {uid!r} already exists")
    return _ok(user, "created", 201)


@api.get("/users/<uid>/")
def get_user(uid: str) -> tuple[Response, int]:
    return _ok(_found(db.get_user(uid), uid), "get")


@api.put("/users/<uid>/")
def update_user(uid: str) -> tuple[Response, int]:
    username = _username(_json_body())
    return _ok(_found(db.update_user(uid, username), uid), "updated")


@api.delete("/users/<uid>/")
def delete_user(uid: str) -> tuple[str, int]:
    if not db.delete_user(uid):
        abort(404, description=f"user {uid!r} not found")
    return "", 204


# Deliberately untested: no view test calls this route, so the coverage report of
# the sample shows real misses. Do not add a test for it.
@api.get("/users/<uid>/export/")
def export_user(uid: str) -> Response:
    user = _found(db.get_user(uid), uid)
    out = io.StringIO()
    csv.writer(out).writerow([user["uid"], user["username"]])
    return Response(out.getvalue(), mimetype="text/csv")
