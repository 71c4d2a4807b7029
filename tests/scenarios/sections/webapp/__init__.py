"""The API: its item view asks the inventory service, and counts views in Redis."""

from __future__ import annotations

import os

import redis
import requests
from flask import Flask, abort, jsonify

from nose2_servercov.flask import init_app


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/health/")
    def health():
        return jsonify(status="ok")

    @app.get("/items/<int:number>/")
    def item(number: int):
        if number > 100:
            abort(404)
        stock = requests.get(f"{os.environ['INVENTORY_URL']}/stock/{number}", timeout=10).json()
        views = redis.Redis.from_url(os.environ["REDIS_URL"]).incr("views")
        if stock["left"]:  # noqa: SIM108 (two branches, on purpose)
            state = "in stock"
        else:
            state = "sold out"
        return jsonify(number=number, state=state, views=int(views))

    @app.get("/never/")
    def never():
        return "never requested"

    init_app(app, shutdown_path="/servercov/shutdown/")
    return app
