"""The ASGI and Django helpers' gate, mount prefixes, and greenlets read from the command."""

from __future__ import annotations

import asyncio
import shlex

import pytest
from coverage.config import CoverageConfig

from nose2_servercov import asgi, wsgi
from nose2_servercov.app import gate, stopping
from nose2_servercov.app.contexts import ContextSwitch
from nose2_servercov.engine.config import greenlets


@pytest.mark.parametrize(("wanted", "full", "inner", "matches"), [
    ("/servercov/shutdown/", "/servercov/shutdown/", "/servercov/shutdown/", True),
    ("/servercov/shutdown/", "/api/servercov/shutdown/", "/servercov/shutdown/", True),
    ("/api/servercov/shutdown/", "/api/servercov/shutdown/", "/servercov/shutdown/", True),
    ("/servercov/shutdown/", "/api/servercov/shutdown/x", "/servercov/shutdown/x", False),
    ("/api/servercov/shutdown/", "/servercov/shutdown/", "/servercov/shutdown/", False),
])
def test_the_route_is_found_with_or_without_the_mount_prefix(wanted, full, inner, matches):
    assert gate.is_control_path(wanted, full, inner) is matches


def test_tokens_are_compared_whole():
    assert gate.token_matches("s3cret", "s3cret")
    assert gate.token_matches(b"s3cret", "s3cret")
    assert not gate.token_matches("s3cre", "s3cret")
    assert not gate.token_matches("", "")


def wsgi_app(environ, start_response):
    start_response("404 Not Found", [])
    return [b"app"]


def test_the_wsgi_route_answers_under_script_name(monkeypatch):
    stops = []
    monkeypatch.setattr(stopping, "stop_after", lambda sent, environ: stops.append(environ))
    seen = {}
    environ = {"SCRIPT_NAME": "/api", "PATH_INFO": "/servercov/shutdown/",
               "REQUEST_METHOD": "POST", "HTTP_X_SERVERCOV_TOKEN": "t"}
    body = wsgi.ServercovMiddleware(wsgi_app, token="t")(
        environ, lambda status, headers: seen.setdefault("status", status))
    assert seen["status"] == "202 Accepted" and b"".join(body) == b'{"status": "stopping"}'
    assert stops


async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def call_asgi(app, path, *, token=None, root_path=""):
    headers = [(b"x-servercov-token", token.encode())] if token is not None else []
    scope = {"type": "http", "method": "POST", "path": path, "root_path": root_path,
             "headers": headers}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"]


def test_the_asgi_route_is_absent_without_a_token_and_gated_with_one(monkeypatch):
    monkeypatch.delenv("SERVERCOV_TOKEN", raising=False)
    assert asgi.wrap(asgi_app) is asgi_app
    stops = []
    monkeypatch.setattr(stopping, "stop_after", lambda sent, environ: stops.append(sent))
    gated = asgi.ServercovMiddleware(asgi_app, token="t")
    assert call_asgi(gated, "/servercov/shutdown/") == 403
    assert call_asgi(gated, "/servercov/shutdown/", token="x") == 403
    assert call_asgi(gated, "/other/", token="t") == 404
    assert stops == []
    assert call_asgi(gated, "/api/servercov/shutdown/", token="t", root_path="/api") == 202
    assert call_asgi(gated, "/servercov/shutdown/", token="t", root_path="/api") == 202
    assert len(stops) == 2


def test_the_django_middleware_is_dropped_without_a_token(monkeypatch):
    from django.conf import settings

    if not settings.configured:
        settings.configure(ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__)
    from django.core.exceptions import MiddlewareNotUsed
    from django.http import HttpResponse
    from django.test import RequestFactory

    from nose2_servercov import django as helper

    monkeypatch.delenv("SERVERCOV_TOKEN", raising=False)
    with pytest.raises(MiddlewareNotUsed):
        helper.ServercovMiddleware(lambda request: HttpResponse("app"))
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    stops = []
    monkeypatch.setattr(stopping, "stop_after", lambda sent, environ: stops.append(environ))
    middleware = helper.ServercovMiddleware(lambda request: HttpResponse("app", status=404))
    factory = RequestFactory()
    assert middleware(factory.post("/servercov/shutdown/")).status_code == 403
    assert middleware(factory.post("/servercov/shutdown/",
                                   headers={"X-Servercov-Token": "t"})).status_code == 202
    assert middleware(factory.get("/other/", headers={"X-Servercov-Token": "t"})
                      ).status_code == 404
    assert len(stops) == 1


urlpatterns: list[object] = []


@pytest.mark.parametrize(("command", "library"), [
    ("gunicorn -k gevent app:app", "gevent"),
    ("gunicorn -kgevent app:app", "gevent"),
    ("gunicorn --worker-class=gevent app:app", "gevent"),
    ("{python} -m gunicorn --worker-class gunicorn.workers.ggevent.GeventWorker app:app",
     "gevent"),
    ("gunicorn -k egg:gunicorn#gevent app:app", "gevent"),
    ("gunicorn -k eventlet app:app", "eventlet"),
    ("uwsgi --http :8000 --gevent 100 --module app:app", "gevent"),
    ("{python} -m gevent.monkey app.py", "gevent"),
    ("gunicorn -k gthread app:app", None),
    ("gunicorn -k uvicorn.workers.UvicornWorker app:app", None),
    ("{python} -m uvicorn app:app", None),
])
def test_the_greenlet_library_is_read_from_the_command(command, library):
    assert greenlets.library_in_command(shlex.split(command)) == library


def test_announcing_keeps_a_light_thread_choice_the_user_made():
    settings = CoverageConfig()
    assert greenlets.announce(settings, ["gunicorn", "-k", "gevent"]) == "gevent"
    assert settings.concurrency == ["gevent", "thread"]
    chosen = CoverageConfig()
    chosen.concurrency = ["eventlet"]
    assert greenlets.announce(chosen, ["gunicorn", "-k", "gevent"]) is None
    assert chosen.concurrency == ["eventlet"]
    plain = CoverageConfig()
    assert greenlets.announce(plain, ["gunicorn", "app:app"]) is None
    assert plain.concurrency == []


def test_the_asgi_middleware_hands_the_test_context_to_the_switch(monkeypatch):
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    gated = asgi.ServercovMiddleware(asgi_app, token="t")
    labels = []

    class Recording(ContextSwitch):
        def __call__(self, label: str) -> None:
            labels.append(label)

    gated.switch_context = Recording()
    scope = {"type": "http", "method": "GET", "path": "/x/", "root_path": "",
             "headers": [(b"x-servercov-context", b"tests.test_a.A.test_one")]}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    asyncio.run(gated(scope, receive, send))
    assert labels == ["tests.test_a.A.test_one"]
