"""A second HTTP service the API calls: stock per item, counted in Redis."""

from __future__ import annotations

import json
import os

import redis


def _stock(number: int) -> dict[str, object]:
    if number % 3 == 0:  # noqa: SIM108 (two branches, on purpose)
        left = 0
    else:
        left = number * 10
    seen = redis.Redis.from_url(os.environ["REDIS_URL"]).incr(f"stock:{number}")
    return {"number": number, "left": left, "asked": int(seen)}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/stock/"):
        body = _stock(int(path.rsplit("/", 1)[1]))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]
    if path == "/never":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"never asked"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
