"""Benchmark: what servercov's own code costs a request under ``contexts = test``, in process.

    .venv/bin/python bench/contexts_inprocess.py [--core sysmon] [--branch] [--rounds 41]
                                                 [--trivial]

No server, no network: the servers scenario's Flask app is called as WSGI
in this process, under coverage (``source = webapp``), bare and through
servercov's middleware with contexts off, on with unlabelled requests, and
on with every request labelled, in turn for ``--requests`` requests a round.
What is left between them is servercov's middleware alone, without the
HTTP parsing and the machine's drift that ``contexts_sysmon.py`` must
measure through.  The figure is the median of the rounds' differences.
``--trivial`` calls an app that answers at once instead: the middleware is
then most of what is timed, and differences of a tenth of a microsecond show.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from common import SCENARIO, record

LABEL = "bench"
WSGIApp = Callable[..., Iterable[bytes]]


def environ(label: str | None) -> dict[str, Any]:
    """Return the WSGI environ of one ``GET /items/3/``, labelled or not."""
    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/items/3/", "SCRIPT_NAME": "",
               "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1", "wsgi.version": (1, 0),
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
               "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
    if label:
        request["HTTP_X_SERVERCOV_CONTEXT"] = label
    return request


def serve(app: WSGIApp, label: str | None, requests: int) -> float:
    """Serve ``requests`` requests as a WSGI server does; return the microseconds of each."""
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        return None

    started = time.perf_counter_ns()
    for _ in range(requests):
        body = app(environ(label), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter_ns() - started) / requests / 1000


def trivial_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answer at once: what is timed around it is servercov's alone."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def setups(*, trivial: bool) -> dict[str, tuple[WSGIApp, str | None]]:
    """Return the app four ways: bare, through the middleware with contexts off, on, on labelled."""
    from nose2_servercov.protocol import CONTEXTS_VARIABLE, TOKEN_VARIABLE
    from nose2_servercov.wsgi import ServercovMiddleware

    sys.path.insert(0, str(SCENARIO))
    from webapp import create_app  # type: ignore[import-not-found]  # imported once coverage runs

    os.environ.pop(TOKEN_VARIABLE, None)  # the app's own init_app adds no middleware then
    app = trivial_app if trivial else create_app().wsgi_app
    token = "t" * 32
    off = ServercovMiddleware(app, token=token)
    os.environ[CONTEXTS_VARIABLE] = "test"
    on = ServercovMiddleware(app, token=token)
    return {"bare": (app, None), "off": (off, None), "unlabelled": (on, None),
            "labelled": (on, LABEL)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", choices=("sysmon", "ctrace", "auto"), default="sysmon")
    parser.add_argument("--branch", action="store_true")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--requests", type=int, default=500, help="requests a round, a setup")
    parser.add_argument("--trivial", action="store_true", help="an app that answers at once")
    parser.add_argument("--quick", action="store_true", help="three short rounds: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests = 3, 50
    if args.core != "auto":
        os.environ["COVERAGE_CORE"] = args.core
    import coverage

    cov = coverage.Coverage(source=["webapp"], branch=args.branch, data_file=None)
    cov.start()
    try:
        apps = setups(trivial=args.trivial)
        for app, label in apps.values():  # warm-up: caches, the first label's switch
            serve(app, label, args.requests)
        times: dict[str, list[float]] = {name: [] for name in apps}
        for round_ in range(args.rounds):
            names = list(apps)
            for name in names[::-1] if round_ % 2 else names:
                times[name].append(serve(*apps[name], args.requests))
        core = cov.get_option("run:core") or os.environ.get("COVERAGE_CORE", "default")
    finally:
        cov.stop()
    python = sys.version.split()[0]
    coverage_kind = "line + branch" if args.branch else "line"
    subject = ("a WSGI app that answers at once" if args.trivial
               else "the servers scenario's Flask app")
    print(f"in process, {subject}; {args.rounds} rounds x "
          f"{args.requests} requests; core={core}, {coverage_kind} coverage; Python {python}")
    figures: dict[str, object] = {"rounds": args.rounds, "requests": args.requests}
    for name in apps:
        extra = [t - o for t, o in zip(times[name], times["off"], strict=True)]
        low, middle, high = statistics.quantiles(extra, n=4) if len(extra) >= 4 else (
            min(extra), statistics.median(extra), max(extra))
        each = statistics.median(times[name])
        figures[name] = {"us_per_request": each, "us_over_off_median_q1_q3": (middle, low, high)}
        print(f"  {name}: {each:.2f} us a request; {middle:+.2f} us over contexts off "
              f"(quartiles {low:+.2f} to {high:+.2f})")
    if not args.quick:
        app = ", trivial app" if args.trivial else ""
        record(f"contexts_inprocess[Python {python}, {args.core}, {coverage_kind}{app}]", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
