"""The collector: coverage data from agents on other hosts, combined with ``[paths]``.

``servercov collect`` and runs against ``remotes`` (no local ``command``) ask
every agent (``servercov serve --control``) at once for ``/snapshot`` or
``/stop``, write each answer as a parallel data file beside the rcfile's data
file, and combine them with coverage's own ``[paths]`` remapping, so that a
container's ``/app/...`` becomes the local checkout's files.  An agent that
fails is named; what the others returned is kept and reported.  Collected
files that match no local file are named in one line with the ``[paths]``
entry that would map them, never reported as a silent 0 %.
"""

from __future__ import annotations

import concurrent.futures
import copy
import http.client
import json
import os
import re
import secrets
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from coverage import CoverageData
from coverage.config import CoverageConfig
from coverage.exceptions import CoverageException
from coverage.files import PathAliases

from nose2_servercov.engine import data, network
from nose2_servercov.engine.config import ServerConfig
from nose2_servercov.engine.servestate import read_state, state_path
from nose2_servercov.errors import ConfigError, DataError, ServercovError, ServerStartError
from nose2_servercov.remote.agent import CONTENT_TYPE, PROBLEM_HEADER, TOKEN_ENV, WARNING_HEADER

REMOTE_INFIX = ".servercov-remote."
_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox",
              ".nox", "site-packages", "htmlcov"}


@dataclass
class AgentAnswer:
    """What one agent returned: a local data file, or why there is none."""

    url: str
    data_file: str | None = None
    error: str | None = None
    problem: str | None = None  # the data came, but the agent says it is not whole
    warning: str | None = None
    seconds: float = 0.0
    size: int = 0


@dataclass
class Collected:
    """What a collect produced: every agent's answer, and the report of those that answered."""

    answers: list[AgentAnswer]
    result: data.ReportResult | None = None
    failed: list[AgentAnswer] = field(default_factory=list)

    def failures(self) -> str:
        """Return the line that names every agent that failed, and why."""
        names = "; ".join(f"{a.url}: {a.error or a.problem}" for a in self.failed)
        return f"{len(self.failed)} of {len(self.answers)} agents failed: {names}"


class AgentError(ServercovError):
    """An agent could not be reached or did not answer as expected."""


def agent_urls(given: Sequence[str], config: ServerConfig) -> list[str]:
    """Return the agents to collect from: those named, else ``[servercov] remotes``."""
    if given:
        urls = []
        for url in given:
            if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
                raise ConfigError(f"{url}: expected an agent URL such as https://api-1:8765")
            urls.append(url.rstrip("/"))
        return urls
    if not config.remotes:
        raise ConfigError(f"{config.rcfile}: no agents to collect from: name their URLs, or "
                          "set [servercov] remotes")
    return list(config.remotes)


def request(method: str, url: str, *, token: str | None, timeout: float,
            ) -> tuple[int, dict[str, str], bytes]:
    """Send one request to an agent; return (status, headers, body); raise OSError.

    HTTPS verifies the agent's certificate against the system's CAs (or
    ``SSL_CERT_FILE``, which OpenSSL reads for a private CA).
    """
    parts = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except ssl.SSLError as exc:
        raise OSError(f"TLS: {exc.reason or exc}") from None
    except http.client.HTTPException as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def _explain_status(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().splitlines()
    said = f" ({text[0][:200]})" if text else ""
    if status == 401:
        return f"401: the agent wants a token{said}; set {TOKEN_ENV} or --control-token-file"
    if status == 403:
        return f"403: the agent refused the token{said}"
    return f"answered {status}{said}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def fetch(url: str, *, stop: bool, token: str | None, timeout: float,
          target: str) -> AgentAnswer:
    """Ask one agent for its data (``/stop`` or ``/snapshot``); write it to ``target``."""
    answer = AgentAnswer(url)
    started = time.monotonic()
    try:
        status, headers, body = request("POST", url + ("/stop" if stop else "/snapshot"),
                                        token=token, timeout=timeout)
    except OSError as exc:
        answer.error = f"cannot fetch its data: {_reason(exc)}"
        return answer
    answer.seconds = time.monotonic() - started
    if status != 200:
        answer.error = _explain_status(status, body)
        return answer
    if headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
        answer.error = (f"answered {headers.get('content-type') or 'no content type'}, not "
                        f"{CONTENT_TYPE}: is it a servercov agent?")
        return answer
    answer.problem = headers.get(PROBLEM_HEADER.lower())
    answer.warning = headers.get(WARNING_HEADER.lower())
    Path(target).write_bytes(body)
    try:  # a whole, readable coverage data file, or nothing counted
        check = CoverageData(target)
        check.read()
        check.measured_files()
        check.close(force=True)
    except (CoverageException, OSError) as exc:
        os.unlink(target)
        answer.error = f"sent data that coverage cannot read: {exc}"
        return answer
    answer.data_file, answer.size = target, len(body)
    return answer


def _safe_name(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", urllib.parse.urlsplit(url).netloc)


def fetch_all(urls: Sequence[str], *, stop: bool, token: str | None, timeout: float,
              data_file: str) -> list[AgentAnswer]:
    """Ask every agent at once; return their answers in the order of ``urls``."""
    tag = f"{os.getpid()}.{secrets.token_hex(3)}"
    targets = [f"{data_file}{REMOTE_INFIX}{number}.{_safe_name(url)}.{tag}"
               for number, url in enumerate(urls)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(urls), 1)) as pool:
        futures = [pool.submit(fetch, url, stop=stop, token=token, timeout=timeout,
                               target=target) for url, target in zip(urls, targets, strict=True)]
        return [future.result() for future in futures]


def collector_settings(config: ServerConfig) -> CoverageConfig:
    """Return coverage's settings for combining here: ``[paths]`` relative to the rcfile."""
    settings = data.server_settings(config.rcfile)
    folder = config.folder
    paths: dict[str, list[str]] = {}
    for name, entries in settings.paths.items():
        absolute = []
        for number, entry in enumerate(entries):
            keep = (entry.startswith("*") or os.path.isabs(entry)
                    or (number > 0 and re.match(r"^[A-Za-z]:[\\/]|^\\\\", entry)))
            absolute.append(entry if keep else str(folder / entry) + (
                os.sep if entry.endswith(("/", "\\")) else ""))
        paths[name] = absolute
    settings = copy.copy(settings)
    settings.paths = paths
    return settings


def _aliases(settings: CoverageConfig) -> PathAliases:
    aliases = PathAliases(relative=settings.relative_files)
    for entries in settings.paths.values():
        for pattern in entries[1:]:
            aliases.add(pattern, entries[0])
    return aliases


def local_roots(settings: CoverageConfig, folder: Path) -> list[str]:
    """Return where local source files are: ``[run] source`` folders, else the rcfile's."""
    roots = [os.path.realpath(src) for src in settings.source or () if os.path.isdir(src)]
    return roots or [os.path.realpath(folder)]


def unmatched_files(settings: CoverageConfig, files: Sequence[str], folder: Path) -> list[str]:
    """Return the measured files of ``files`` that ``[paths]`` maps to no local file.

    Local means under the collector's ``[run] source`` folders (else the
    rcfile's folder): a host's path that happens to exist here too (the same
    machine, a shared disk) is not the checkout being reported.
    """
    aliases = _aliases(settings)
    roots = local_roots(settings, folder)
    unmatched: set[str] = set()
    for name in files:
        collected = CoverageData(name)
        collected.read()
        for measured in collected.measured_files():
            mapped = os.path.realpath(aliases.map(measured))
            inside = any(mapped == root or mapped.startswith(root + os.sep) for root in roots)
            if not inside or not os.path.exists(mapped):
                unmatched.add(measured)
        collected.close(force=True)
    return sorted(unmatched)


def _local_files_named(folder: Path, name: str, limit: int = 20_000) -> list[Path]:
    found = []
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        seen += len(names)
        if name in names:
            found.append(Path(root) / name)
        if seen > limit:
            break
    return found


def suggest_paths_entry(remote_path: str, folder: Path) -> str | None:
    """Return a ``[paths]`` line mapping ``remote_path`` into ``folder``, None if no file fits."""
    remote_parts = re.split(r"[\\/]", remote_path)
    best: tuple[int, Path] | None = None
    for local in _local_files_named(folder, remote_parts[-1]):
        local_parts = local.relative_to(folder).parts
        common = 0
        while (common < len(local_parts) and common < len(remote_parts) - 1
               and local_parts[-1 - common] == remote_parts[-1 - common]):
            common += 1
        if best is None or common > best[0]:
            best = (common, local)
    if best is None:
        return None
    common, local = best
    local_parts = local.relative_to(folder).parts
    # Map the folder that holds the common tail (webapp/ for webapp/views.py), not the file.
    keep = max(common - 1, 1) if len(local_parts) > 1 else common
    local_dir = "/".join(local_parts[:len(local_parts) - keep])
    remote_dir = "/".join(remote_parts[:len(remote_parts) - keep])
    sep = "\\" if "\\" in remote_path and "/" not in remote_path else "/"
    if sep == "\\":
        remote_dir = remote_dir.replace("/", "\\")
    name = re.sub(r"\W+", "_", local_parts[-1 - keep] if len(local_parts) > keep else "source")
    return f"{name or 'source'} = {local_dir or '.'}/, {remote_dir}{sep}"


def explain_unmatched(unmatched: Sequence[str], config: ServerConfig) -> str:
    """Return the one line that names the unmatched files and the entry that maps them."""
    first = unmatched[0]
    more = f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else ""
    entry = suggest_paths_entry(first, config.folder)
    head = f"collected data names {first}{more}, which matches no local file"
    if entry is None:
        name = re.split(r"[\\/]", first)[-1]
        return (f"{head}, and no file named {name} is under {config.folder}: collect from the "
                f"checkout of the code the agents run, and map it with a [paths] entry in "
                f"{config.rcfile}")
    return f"{head}; add this [paths] entry to {config.rcfile}: {entry}"


def combine_collected(config: ServerConfig, files: Sequence[str], out: IO[str], *,
                      local: Sequence[str] = ()) -> data.ReportResult:
    """Combine the collected data files with ``[paths]`` and write the configured reports.

    ``local`` are data files written here (the test runner's own), combined too.
    """
    settings = collector_settings(config)
    unmatched = unmatched_files(settings, files, config.folder)
    if unmatched:
        raise DataError(explain_unmatched(unmatched, config))
    every = [*files, *local]
    return data._combine_and_report(data._coverage(settings), every, every, config.reports, out)


def refuse_beside_a_serve(config: ServerConfig) -> None:
    """Refuse to collect where a local serve of the same rcfile writes its data files."""
    serving = read_state(state_path(config.rcfile))
    if serving is not None and serving.is_running():
        # Its processes write <data_file>.* right here: erasing them would lose their data.
        raise DataError(f"a servercov serve (pid {serving.serve_pid}) runs with "
                        f"{config.rcfile} and writes its data beside it; collect with an "
                        "rcfile in another folder")


def collect(config: ServerConfig, urls: Sequence[str], *, token: str | None, stop: bool,
            out: IO[str], err: IO[str], in_run: bool = False) -> Collected:
    """Fetch from every agent at once, combine what came back, report; name the failures.

    ``in_run``: at the end of a test run, whose start erased the stale data;
    data files the test runner wrote meanwhile are combined too.
    """
    settings = data.server_settings(config.rcfile)
    if not in_run:
        refuse_beside_a_serve(config)
    local = []
    if in_run:
        data.save_runner_data(settings)
        local = data.data_files(settings)
    else:
        data.erase_stale_data(settings)
    timeout = 3 * config.shutdown_timeout + 60 if stop else config.shutdown_timeout + 30
    started = time.monotonic()
    answers = fetch_all(urls, stop=stop, token=token, timeout=timeout,
                        data_file=settings.data_file)
    seconds = time.monotonic() - started
    collected = Collected(answers, failed=[a for a in answers if a.error or a.problem])

    def say(message: str) -> None:
        err.write(f"servercov: {message}\n")
        err.flush()

    for answer in answers:
        if answer.error:
            say(f"agent {answer.url}: {answer.error}")
        else:
            say(f"agent {answer.url}: {'final data' if stop else 'snapshot'}, "
                f"{answer.size} bytes in {answer.seconds:.2f} s")
        if answer.problem:
            say(f"agent {answer.url}: its data is not whole: {answer.problem}")
        if answer.warning:
            say(f"agent {answer.url}: warning: {answer.warning}")
    files = [a.data_file for a in answers if a.data_file]
    if not files:
        return collected
    result = combine_collected(config, files, out, local=local)
    say(f"collected {len(files)} of {len(urls)} agents in {seconds:.2f} s; combined into "
        f"{settings.data_file}")
    for name, place in result.outputs:
        if place != "terminal":
            say(f"{name} report: {place}")
    if result.failed_under:
        say(f"total coverage {result.total:.2f}% is under fail_under {result.fail_under:g}")
    collected.result = result
    return collected


def agent_status(url: str, *, token: str | None, timeout: float) -> dict[str, Any]:
    """Return an agent's ``/status``; raise AgentError if it does not answer with one."""
    try:
        status, _, body = request("GET", url + "/status", token=token, timeout=timeout)
    except OSError as exc:
        raise AgentError(f"{url}: {_reason(exc)}") from None
    if status != 200:
        raise AgentError(f"{url}: {_explain_status(status, body)}")
    try:
        answer = json.loads(body)
    except ValueError:
        raise AgentError(f"{url}: /status is not JSON: is it a servercov agent?") from None
    if not isinstance(answer, dict):
        raise AgentError(f"{url}: /status is not a JSON object")
    return answer


class RemoteRun:
    """A run against remote agents: start nothing, wait for them, collect at the end.

    The same steps as :class:`~nose2_servercov.engine.run.ServerSession` (which
    hands them here when ``remotes`` is set and ``command`` is not).
    """

    def __init__(self, config: ServerConfig, *, out: IO[str], err: IO[str]) -> None:
        self.config = config
        self.out, self.err = out, err
        self.settings = data.server_settings(config.rcfile)
        self.token = os.environ.get(TOKEN_ENV, "").strip() or None
        self.url = ""
        self.collected: Collected | None = None

    def say(self, message: str) -> None:
        """Print one ``servercov:`` line."""
        self.err.write(f"servercov: {message}\n")
        self.err.flush()

    def start(self) -> str:
        """Wait for every agent's /status and for ``ready_path`` on ``url``; return ``url``."""
        config = self.config
        if "{port}" in config.url and config.port == 0:
            raise ConfigError(f"{config.rcfile}: [servercov] url: with remotes and no command, "
                              "expected where the tests reach the remote servers (url, or host "
                              "and port), got port 0")
        self.url = config.url.format(host=config.host, port=config.port).rstrip("/")
        refuse_beside_a_serve(config)
        data.erase_stale_data(self.settings)
        started = time.monotonic()
        deadline = started + config.startup_timeout
        waiting = list(config.remotes)
        last: dict[str, str] = {}
        while waiting:
            for url in list(waiting):
                try:
                    agent_status(url, token=self.token, timeout=2.0)
                    waiting.remove(url)
                except AgentError as exc:
                    last[url] = str(exc)
                    if " 401: " in str(exc) or " 403: " in str(exc):
                        raise ServerStartError(str(exc)) from None
            if waiting and time.monotonic() > deadline:
                raise ServerStartError(
                    f"agents did not answer /status within {config.startup_timeout:g} s "
                    f"(startup_timeout): " + "; ".join(last[url] for url in waiting))
            if waiting:
                time.sleep(0.1)
        while config.ready_path:
            try:
                if network.http_status("GET", self.url + config.ready_path, timeout=2.0) < 500:
                    break
                reason = "answered >= 500"
            except OSError as exc:
                reason = _reason(exc)
            if time.monotonic() > deadline:
                raise ServerStartError(f"{self.url}{config.ready_path} did not answer with a "
                                       f"status < 500 within {config.startup_timeout:g} s "
                                       f"(startup_timeout): {reason}")
            time.sleep(0.1)
        self.say(f"remote servers ready: {self.url}, {len(config.remotes)} agent"
                 f"{'s' if len(config.remotes) != 1 else ''}, in "
                 f"{time.monotonic() - started:.2f} s")
        return self.url

    def collect(self) -> Collected:
        """Collect from every agent once (``/stop`` or ``/snapshot``); idempotent."""
        if self.collected is None:
            self.collected = collect(self.config, list(self.config.remotes), token=self.token,
                                     stop=self.config.remote_stop, out=self.out, err=self.err,
                                     in_run=True)
        return self.collected

    def finish(self) -> data.ReportResult:
        """Collect, combine and report; raise naming the agents that failed."""
        collected = self.collect()
        if collected.failed:
            raise AgentError(collected.failures())
        assert collected.result is not None
        return collected.result
