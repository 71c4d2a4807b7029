"""A Flask app whose every measured line depends only on the requests it gets.

Nothing here knows which server runs it: the servers' launchers (app.py,
uwsgi-nomaster.ini) live beside this package, outside the measured source, so the
same requests replayed through Flask's test client execute exactly the same
lines.  The once_* handlers are each requested exactly once per run: if the
data of one worker process or one thread is lost, their lines go missing.
"""

from __future__ import annotations

import os
import threading
import time

from flask import Flask, abort, jsonify, request

from nose2_servercov.flask import init_app


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/health/")
    def health():
        return jsonify(status="ok")

    @app.get("/pid/")
    def pid():
        return jsonify(pid=os.getpid(), thread=threading.get_ident())

    @app.get("/slow/")
    def slow():
        time.sleep(0.02)  # long enough that concurrent requests spread over the workers
        return "slow"

    @app.get("/items/<int:number>/")
    def item(number: int):
        if number % 2:  # noqa: SIM108 (two branches, on purpose)
            kind = "odd"
        else:
            kind = "even"
        if number > 100:
            abort(404)
        return jsonify(number=number, kind=kind)

    @app.post("/echo/")
    def echo():
        payload = request.get_json(silent=True)
        if payload is None:
            return jsonify(error="not json"), 400
        if "double" in payload:
            payload["double"] = payload["double"] * 2
        return jsonify(payload)

    @app.get("/boom/")
    def boom():
        raise RuntimeError("a handler that fails: the server answers 500")

    @app.get("/once/a/")
    def once_a():
        return jsonify(once="a", pid=os.getpid())

    @app.get("/once/b/")
    def once_b():
        return jsonify(once="b", pid=os.getpid())

    @app.get("/once/c/")
    def once_c():
        return jsonify(once="c", pid=os.getpid())

    @app.get("/once/d/")
    def once_d():
        return jsonify(once="d", pid=os.getpid())

    @app.get("/after/kill/")
    def after_kill():
        return jsonify(after="kill", pid=os.getpid())

    @app.get("/never/")
    def never():
        return "never requested"

    init_app(app, shutdown_path="/servercov/shutdown/")
    return app
