"""contexts = test: one request at a time per server process, released at the body's close()."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from nose2_servercov import wsgi
from nose2_servercov.app.contexts import ContextSwitch, serving_label
from tests.support import CORES, REPO, python_env


def test_a_second_request_waits_until_the_first_ones_body_is_closed(monkeypatch):
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    events = []

    def app(environ, start_response):
        events.append(("start", environ.get("HTTP_X_SERVERCOV_CONTEXT")))
        start_response("200 OK", [])
        return [b"body"]

    wrapped = wsgi.wrap(app)
    first = wrapped({"PATH_INFO": "/a", "HTTP_X_SERVERCOV_CONTEXT": "test_a"}, lambda *a: None)
    second_done = threading.Event()

    def second() -> None:
        body = wrapped({"PATH_INFO": "/b", "HTTP_X_SERVERCOV_CONTEXT": "test_b"},
                       lambda *a: None)
        body.close()
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not second_done.wait(0.3)  # held by the first request's open body
    assert events == [("start", "test_a")]
    assert list(first) == [b"body"]
    first.close()
    assert second_done.wait(5)
    thread.join(5)
    assert events == [("start", "test_a"), ("start", "test_b")]
    first.close()  # a second close() releases nothing twice
    third = wrapped({"PATH_INFO": "/c"}, lambda *a: None)  # unlabelled requests take turns too
    third.close()


def _labelled(path: str, label: str) -> dict[str, str]:
    return {"PATH_INFO": path, "HTTP_X_SERVERCOV_CONTEXT": label}


def test_an_app_that_raises_ends_its_turn(monkeypatch):
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")
    seen = []

    def app(environ, start_response):
        seen.append(serving_label())
        if environ["PATH_INFO"] == "/boom":
            raise ValueError("boom")
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = wsgi.wrap(app)
    with pytest.raises(ValueError):
        wrapped(_labelled("/boom", "test_a"), lambda *a: None)
    assert serving_label() is None  # the turn is over: no label left behind
    ended = threading.Event()
    thread = threading.Thread(target=lambda: (wrapped(_labelled("/ok", "test_b"),
                                                      lambda *a: None).close(), ended.set()))
    thread.start()
    assert ended.wait(5)  # not held by the request that raised
    thread.join(5)
    assert seen == ["test_a", "test_b"]


def test_a_body_dropped_without_close_ends_its_turn(monkeypatch):
    monkeypatch.setenv("SERVERCOV_TOKEN", "t")
    monkeypatch.setenv("SERVERCOV_CONTEXTS", "test")

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = wsgi.wrap(app)
    body = wrapped(_labelled("/a", "test_a"), lambda *a: None)
    assert serving_label() == "test_a"
    del body  # a server that skips close(): the finalizer ends the turn
    assert serving_label() is None
    ended = threading.Event()
    thread = threading.Thread(target=lambda: (wrapped(_labelled("/b", "test_b"),
                                                      lambda *a: None).close(), ended.set()))
    thread.start()
    assert ended.wait(5)
    thread.join(5)


def test_a_request_that_never_closes_is_named_and_does_not_block_for_good(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVERCOV_RUN_DIR", str(tmp_path))
    switch = ContextSwitch()
    monkeypatch.setattr(switch, "HOLD_TIMEOUT", 0.2)
    release = switch.hold("test_a")
    switch.hold("test_b")()  # waits 0.2 s, then runs beside it, and says so
    [problem] = tmp_path.glob("problem.*")
    assert "held the test context for over 0.2 s" in problem.read_text()
    release()


def test_on_an_event_loop_a_second_request_waits_without_blocking_the_loop(monkeypatch):
    import asyncio

    switch = ContextSwitch()
    events = []

    async def request(label: str, release_from_a_thread: bool) -> None:
        release = await switch.hold_async(label)
        events.append(("start", label))
        await asyncio.sleep(0.1)  # the loop runs the other request meanwhile, up to its wait
        events.append(("end", label))
        if release_from_a_thread:  # Django closes async responses in a worker thread
            thread = threading.Thread(target=release)
            thread.start()
            thread.join()
        else:
            release()
        release()  # a second release releases nothing twice

    async def main() -> None:
        await asyncio.gather(request("test_a", True), request("test_b", False),
                             request("", False))

    asyncio.run(main())
    assert events == [("start", "test_a"), ("end", "test_a"), ("start", "test_b"),
                      ("end", "test_b"), ("start", ""), ("end", "")]


def test_on_an_event_loop_a_request_that_never_ends_is_named(monkeypatch, tmp_path):
    import asyncio

    monkeypatch.setenv("SERVERCOV_RUN_DIR", str(tmp_path))
    switch = ContextSwitch()
    monkeypatch.setattr(switch, "HOLD_TIMEOUT", 0.2)

    async def main() -> None:
        release = await switch.hold_async("test_a")
        (await switch.hold_async("test_b"))()  # waits 0.2 s, then runs beside it
        release()

    asyncio.run(main())
    [problem] = tmp_path.glob("problem.*")
    assert "held the test context for over 0.2 s" in problem.read_text()


# Two coverages one after the other in one process, one middleware: the
# second must get the label although the label repeats (the switch compares
# the coverage too, not only the label).
NEW_COVERAGE_SAME_LABEL = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
folder, core = sys.argv[2], sys.argv[3]
sys.path.insert(0, folder)
os.environ.update(SERVERCOV_TOKEN="t", SERVERCOV_CONTEXTS="test")
import coverage
from nose2_servercov import wsgi
def app(environ, start_response):
    import work
    work.run(environ["PATH_INFO"])
    start_response("200 OK", [])
    return [b"ok"]
wrapped = wsgi.wrap(app)
found = {}
for name, labels in (("first", ["test_a", "test_a"]), ("second", ["test_a", "test_b", "test_b"])):
    cov = coverage.Coverage(data_file=None, source=[folder], config_file=False)
    cov.config.core = core
    cov.start()
    for n, label in enumerate(labels):
        wrapped({"PATH_INFO": "/" + label, "HTTP_X_SERVERCOV_CONTEXT": label},
                lambda *a: None).close()
    cov.stop()
    data = cov.get_data()
    [path] = [f for f in data.measured_files() if f.endswith("work.py")]
    found[name] = {str(line): sorted(contexts)
                   for line, contexts in data.contexts_by_lineno(path).items()}
print(json.dumps(found))
"""

WORK = """\
def run(path):
    if path == "/test_a":
        return "a"
    return "b"
"""


@pytest.mark.parametrize("core", CORES)
def test_a_new_coverage_is_switched_to_a_label_that_repeats(tmp_path, core):
    (tmp_path / "work.py").write_text(WORK)
    run = subprocess.run([sys.executable, "-c", NEW_COVERAGE_SAME_LABEL, str(REPO),
                          str(tmp_path), core], capture_output=True, text=True, timeout=60,
                         env=python_env(), check=False)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["first"] == {"1": ["test_a"], "2": ["test_a"], "3": ["test_a"]}  # 1: import
    # Under the second coverage too, test_a's lines are test_a's, none unlabelled.
    assert found["second"] == {"2": ["test_a", "test_b"], "3": ["test_a"], "4": ["test_b"]}
