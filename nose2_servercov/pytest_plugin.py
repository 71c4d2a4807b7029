"""The pytest plugin: ``pytest --servercov`` over the same engine as nose2's plugin.

Thin, as :mod:`nose2_servercov.plugin` is: the controlling pytest process
starts the server of the rcfile once per session (under pytest-xdist too:
the workers only get its URL), the tests reach it through ``SERVERCOV_URL``,
the ``servercov_url`` and ``servercov_session`` fixtures or a
``ServerTestCase``, and the end of the session stops it, combines and
reports, failing the session when ``[report] fail_under`` is not met or the
server's data went wrong.

Example::

    pytest --servercov                          # the rcfile is found as for nose2
    pytest --servercov-rcfile ci/.apirc -n 2    # one server for both xdist workers
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import pytest
import requests

from nose2_servercov.engine.config import find_rcfile, load_config
from nose2_servercov.engine.testrun import MeasuredTestRun
from nose2_servercov.errors import ServercovError, describe_error
from nose2_servercov.protocol import CONTEXT_HEADER, CONTEXTS_VARIABLE, URL_VARIABLE

PLUGIN_NAME = "servercov-controller"
FAILED = 1  # pytest's "tests failed": fail_under missed, data lost, server gone


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--servercov``, ``--servercov-rcfile`` and the ``servercov`` ini option."""
    group = parser.getgroup("servercov", "coverage of a live server (nose2-servercov)")
    group.addoption("--servercov", action="store_true", default=False,
                    help="start the server of the rcfile's servercov section under coverage "
                         "for the session, stop it and report at the end. "
                         "Example: pytest --servercov -n 2")
    group.addoption("--servercov-rcfile", metavar="FILE", default=None,
                    help="rcfile with the servercov section (default: the first of .apirc, "
                         ".coveragerc, setup.cfg, tox.ini, pyproject.toml that has one); "
                         "implies --servercov. Example: pytest --servercov-rcfile ci/.apirc")
    parser.addini("servercov", type="bool", default=False,
                  help="measure the server of the rcfile's servercov section (as --servercov)")


def pytest_configure(config: pytest.Config) -> None:
    """Switch the plugin on in the controlling process; xdist workers only get the URL."""
    rcfile = config.getoption("servercov_rcfile")
    if not (config.getoption("servercov") or rcfile or config.getini("servercov")):
        return
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        # An xdist worker: the controller's server; its environment came with the spawn,
        # workerinput carries it too in case the worker was started elsewhere.
        for name in (URL_VARIABLE, CONTEXTS_VARIABLE):
            value = worker_input.get(f"servercov:{name}")
            if value:
                os.environ[name] = value
        return
    config.pluginmanager.register(ServercovController(config, rcfile), PLUGIN_NAME)


def _interrupt_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into pytest's interruption, so the session still ends and reports."""
    raise KeyboardInterrupt


class ServercovController:
    """The server of one pytest session, in the process that controls the session."""

    def __init__(self, config: pytest.Config, rcfile: str | None) -> None:
        self.config = config
        self.rcfile = rcfile
        self.run: MeasuredTestRun | None = None
        self.terminal: IO[str] | None = None

    @contextlib.contextmanager
    def _uncaptured(self) -> Iterator[None]:
        capture = self.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            yield

    def _open_terminal(self) -> IO[str]:
        """Return a stream to the real stderr, outside pytest's capture (called uncaptured).

        The server's output (``-v``) and servercov's lines come from a thread
        at any moment, also while a test runs: then pytest's capture holds
        file descriptor 2, and the lines of a passing test were thrown away
        with its captured output.  A copy of descriptor 2 taken while the
        capture is suspended reaches the terminal whatever pytest does.
        """
        sys.stderr.flush()
        try:
            return open(os.dup(sys.stderr.fileno()), "w", buffering=1,
                        encoding=sys.stderr.encoding or "utf-8", errors="replace")
        except (OSError, ValueError, AttributeError):  # no descriptor behind sys.stderr
            return sys.stderr

    def _close_terminal(self) -> None:
        terminal, self.terminal = self.terminal, None
        if terminal is not None and terminal is not sys.stderr:
            terminal.close()

    def _say_error(self, message: str) -> None:
        sys.stderr.write(f"servercov: error: {message}\n")
        sys.stderr.flush()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Start the measured server before collection and before any xdist worker."""
        with self._uncaptured():
            self.terminal = self._open_terminal()
            try:
                server_config = load_config(find_rcfile(  # up to pytest's rootdir
                    self.rcfile, flag="--servercov-rcfile", top=self.config.rootpath))
                run = MeasuredTestRun(server_config,
                                      verbose=self.config.get_verbosity() > 0,
                                      err=self.terminal, out=sys.stdout,
                                      on_sigterm=_interrupt_on_sigterm)
                run.start()
            except (ServercovError, OSError, ValueError) as exc:
                self._close_terminal()
                self._say_error(describe_error(exc))
                pytest.exit("servercov: no test ran", returncode=FAILED)
        self.run = run

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Hand an xdist worker the server's URL (and whether contexts are on)."""
        for name in (URL_VARIABLE, CONTEXTS_VARIABLE):
            if name in os.environ:
                node.workerinput[f"servercov:{name}"] = os.environ[name]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Stop the server, combine and report; fail the session on a problem."""
        run, self.run = self.run, None
        if run is None:
            return
        with self._uncaptured():
            sys.stderr.write("\n")
            try:
                end = run.finish()
            finally:
                self._close_terminal()
            for problem in end.problems:
                self._say_error(problem)
        if (end.problems or end.failed_under or end.lost_data) and session.exitstatus == 0:
            session.exitstatus = FAILED


class ServerHTTPSession(requests.Session):
    """A ``requests.Session`` against the measured server: relative URLs, a timeout.

    ``session.get("/items/1/")`` requests ``<SERVERCOV_URL>/items/1/``; every
    call has a timeout (``timeout``, 10 s unless given); with ``contexts = test``
    every request carries the test's id in the context header.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        """Send one request; a URL without a scheme is joined to the server's URL."""
        text = url.decode() if isinstance(url, bytes) else url
        if "://" not in text:
            text = self.base_url + "/" + text.lstrip("/")
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, text, *args, **kwargs)


@pytest.fixture(scope="session")
def servercov_url() -> str:
    """Return the base URL of the measured server (``SERVERCOV_URL``)."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.fail(f"no server: run pytest with --servercov (or under 'servercov run -- "
                    f"pytest ...'), or set {URL_VARIABLE}", pytrace=False)
    return url


@pytest.fixture
def servercov_session(servercov_url: str,
                      request: pytest.FixtureRequest) -> Iterator[ServerHTTPSession]:
    """Return a ``requests.Session`` against the server, sending this test's context."""
    session = ServerHTTPSession(servercov_url)
    if os.environ.get(CONTEXTS_VARIABLE) == "test":
        session.headers[CONTEXT_HEADER] = request.node.nodeid
    with session:
        yield session
