"""A small Flask app whose every measured line depends only on the requests it gets."""

from __future__ import annotations

import os

from flask import Flask, abort, jsonify, request

from nose2_servercov.flask import init_app


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/health/")
    def health():
        return jsonify(status="ok")

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
        return jsonify(payload)

    @app.get("/once/a/")
    def once_a():
        return "a"

    @app.get("/once/b/")
    def once_b():
        return "b"

    @app.get("/crash/")
    def crash():
        os._exit(7)

    @app.get("/never/")
    def never():
        return "never requested"

    init_app(app, shutdown_path="/servercov/shutdown/")
    return app
