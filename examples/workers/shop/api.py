"""The API: each view hands its work to a worker and answers with the worker's result."""

import os

from flask import Flask, jsonify
from redis import Redis
from rq import Queue

import nose2_servercov.flask
from nose2_servercov.rq import Job
from shop import jobs, tasks

WAIT_SECONDS = 30


def create_app(is_async: bool = True) -> Flask:
    """Build the API; ``is_async=False`` runs RQ jobs at once (the in-process replay)."""
    app = Flask(__name__)
    redis = Redis.from_url(os.environ.get("SHOP_REDIS_URL", "redis://127.0.0.1:6379/0"))
    queue = Queue("shop", connection=redis, job_class=Job, is_async=is_async)

    @app.get("/health")
    def health():
        return "ok"

    @app.get("/price/<int:quantity>")
    def price(quantity):
        return jsonify(price=tasks.price.delay(quantity).get(timeout=WAIT_SECONDS))

    @app.get("/refund/<int(signed=True):amount>")
    def refund(amount):
        result = tasks.refund.delay(amount)
        try:
            return jsonify(refund=result.get(timeout=WAIT_SECONDS))
        except ValueError as exc:
            return jsonify(error=str(exc)), 400

    @app.get("/invoice/<int:order>")
    def invoice(order):
        job = queue.enqueue(jobs.invoice, order)
        return jsonify(invoice=job.latest_result(timeout=WAIT_SECONDS).return_value)

    @app.get("/ship/<int:order>/<int:express>")
    def ship(order, express):
        job = queue.enqueue(jobs.ship, order, bool(express))
        return jsonify(ship=job.latest_result(timeout=WAIT_SECONDS).return_value)

    return nose2_servercov.flask.init_app(app)
