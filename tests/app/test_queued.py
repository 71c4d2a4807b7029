"""The queue helpers: the serving request's label goes into the job; no-ops outside servercov."""

from __future__ import annotations

import celery.signals
from celery import Celery
from redis import Redis

import nose2_servercov.celery
from nose2_servercov import wsgi
from nose2_servercov.app.contexts import serving_label
from nose2_servercov.protocol import DROPPED_LABEL, JOB_CONTEXT_KEY, RUN_DIR_VARIABLE
from nose2_servercov.rq import Job


def invoice(order: int) -> str:
    return f"I-{order}"


def test_a_view_reads_the_label_of_the_request_it_serves(monkeypatch):
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    seen = []

    def app(environ, start_response):
        seen.append(serving_label())
        start_response("200 OK", [])
        return [b""]

    wrapped = wsgi.wrap(app)
    wrapped({"PATH_INFO": "/a", "HTTP_X_SERVERCOV_CONTEXT": "test_a"}, lambda *a: None).close()
    assert seen == ["test_a"]
    assert serving_label() is None  # the request is over


def test_a_dropped_label_travels_as_the_dropped_label(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    monkeypatch.setenv(RUN_DIR_VARIABLE, str(tmp_path))
    seen = []

    def app(environ, start_response):
        seen.append(serving_label())
        start_response("200 OK", [])
        return [b""]

    wrapped = wsgi.wrap(app)
    wrapped({"PATH_INFO": "/a", "HTTP_X_SERVERCOV_CONTEXT": "<b>x</b>"}, lambda *a: None).close()
    assert seen == [DROPPED_LABEL]


def test_an_rq_job_carries_the_label_only_under_contexts_test(monkeypatch):
    connection = Redis(port=1)  # never connected: the job is only built
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    wrapped = wsgi.wrap(lambda environ, start_response: [
        Job.create(invoice, args=(7,), connection=connection).meta.get(JOB_CONTEXT_KEY, "")
        .encode()])
    body = wrapped({"PATH_INFO": "/a", "HTTP_X_SERVERCOV_CONTEXT": "test_a"}, lambda *a: None)
    assert list(body) == [b"test_a"]
    body.close()
    monkeypatch.delenv("SERVERCOV_TOKEN")
    assert JOB_CONTEXT_KEY not in Job.create(invoice, args=(7,), connection=connection).meta


def test_celery_init_app_is_a_no_op_without_servercov(monkeypatch):
    monkeypatch.delenv("SERVERCOV_TOKEN", raising=False)
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    before = list(celery.signals.before_task_publish.receivers)
    app = Celery("shop")
    assert nose2_servercov.celery.init_app(app) is app
    assert list(celery.signals.before_task_publish.receivers) == before


def test_a_celery_message_carries_the_label_of_the_request(monkeypatch):
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    nose2_servercov.celery.init_app(Celery("shop"))
    headers: dict[str, str] = {}
    wrapped = wsgi.wrap(lambda environ, start_response: [
        celery.signals.before_task_publish.send(sender="shop.price", headers=headers) and b""])
    wrapped({"PATH_INFO": "/a", "HTTP_X_SERVERCOV_CONTEXT": "test_a"}, lambda *a: None).close()
    assert headers == {JOB_CONTEXT_KEY: "test_a"}
