"""The collector: coverage data from agents on other hosts, combined with ``[paths]``.

``servercov collect`` and runs against ``remotes`` (no local ``command``) ask
every agent (``servercov serve --control``) at once for ``/snapshot`` or
``/stop`` (:mod:`.client`), write each answer as a parallel data file beside
the rcfile's data file, and combine them with coverage's own ``[paths]``
remapping (:mod:`.paths`), so that a container's ``/app/...`` becomes the
local checkout's files.  An agent that fails is named; what the others
returned is kept and reported.  No agent is trusted: its answer is capped,
under a deadline and checked (:mod:`.client`, :mod:`.untrusted`), and its data
is combined only if it maps onto local files and is of the same kind (lines or
branches) as the others'; else that agent alone is named and left out.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from coverage import CoverageData

from nose2_servercov import protocol
from nose2_servercov.engine import data
from nose2_servercov.engine.config import ServerConfig
from nose2_servercov.engine.servestate import read_state, state_path
from nose2_servercov.errors import ConfigError, DataError
from nose2_servercov.remote import paths
from nose2_servercov.remote.agent import is_loopback
from nose2_servercov.remote.client import AgentAnswer, fetch
from nose2_servercov.remote.untrusted import shown


@dataclass
class Collected:
    """What a collect produced: every agent's answer, and the report of those that answered."""

    answers: list[AgentAnswer]
    result: data.ReportResult | None = None
    failed: list[AgentAnswer] = field(default_factory=list)

    def failures(self) -> str:
        """Return the line that names every agent that failed, and why."""
        names = "; ".join(f"{shown(a.url)}: {shown(a.error or a.problem or '', 1000)}"
                          for a in self.failed)
        return f"{len(self.failed)} of {len(self.answers)} agents failed: {names}"


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


def refuse_token_in_clear(urls: Sequence[str], *, token: str | None, insecure: bool) -> None:
    """Refuse to send the token in clear to another host, unless told the network is private."""
    if token is None or insecure:
        return
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise ConfigError(f"{shown(url)}: plain HTTP would send the control token in clear "
                              "to another host: use https://, or --control-insecure on a "
                              "private network; refused")


def _safe_name(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", urllib.parse.urlsplit(url).netloc)


def fetch_all(urls: Sequence[str], *, stop: bool, token: str | None, timeout: float,
              data_file: str, ca_file: str | None = None) -> list[AgentAnswer]:
    """Ask every agent at once; return their answers in the order of ``urls``."""
    tag = f"{os.getpid()}.{secrets.token_hex(3)}"
    targets = [f"{data_file}{protocol.REMOTE_INFIX}{number}.{_safe_name(url)}.{tag}"
               for number, url in enumerate(urls)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(urls), 1)) as pool:
        futures = [pool.submit(fetch, url, stop=stop, token=token, timeout=timeout,
                               target=target, ca_file=ca_file)
                   for url, target in zip(urls, targets, strict=True)]
        return [future.result() for future in futures]


def combine_collected(config: ServerConfig, files: Sequence[str], out: IO[str], *,
                      local: Sequence[str] = ()) -> data.ReportResult:
    """Combine the collected data files with ``[paths]`` and write the configured reports.

    ``local`` are data files written here (the test runner's own), combined too.
    """
    settings = paths.collector_settings(config)
    every = [*files, *local]
    return data.combine_files_and_report(data.coverage_for(settings), every, every,
                                         config.reports, out)


def _refuse(answer: AgentAnswer, error: str) -> None:
    """Leave ``answer``'s data out of the combine, saying why."""
    assert answer.data_file is not None
    os.unlink(answer.data_file)
    answer.data_file, answer.error = None, error


def screen(config: ServerConfig, answers: Sequence[AgentAnswer]) -> None:
    """Leave out, naming each, the agents whose data maps to no local file or is of another kind.

    The kind (lines or branches) expected is ``[run] branch`` of the rcfile
    when the agents disagree; data of one kind cannot combine with the other.
    """
    settings = paths.collector_settings(config)
    kinds: dict[str, bool] = {}
    for answer in answers:
        if answer.data_file is None:
            continue
        unmatched = paths.unmatched_files(settings, [answer.data_file], config.folder)
        if unmatched:
            _refuse(answer, paths.explain_unmatched(unmatched, config))
            continue
        data_file = CoverageData(answer.data_file)
        data_file.read()
        if data_file.measured_files():
            kinds[answer.url] = data_file.has_arcs()
        data_file.close(force=True)
    if len(set(kinds.values())) < 2:
        return
    for answer in answers:
        if answer.url in kinds and kinds[answer.url] != bool(settings.branch):
            sent = "branch" if kinds[answer.url] else "line"
            _refuse(answer, f"sent {sent} data while [run] branch = {bool(settings.branch)} in "
                            f"{config.rcfile} and other agents sent the other kind: not combined")


def refuse_beside_a_serve(config: ServerConfig) -> None:
    """Refuse to collect where a local serve of the same rcfile writes its data files."""
    serving = read_state(state_path(config.rcfile))
    if serving is not None and serving.is_running():
        # Its processes write <data_file>.* right here: erasing them would lose their data.
        raise DataError(f"a servercov serve (pid {serving.serve_pid}) runs with "
                        f"{config.rcfile} and writes its data beside it; collect with an "
                        "rcfile in another folder")


def answer_lines(answers: Sequence[AgentAnswer], *, stop: bool) -> Iterator[str]:
    """Yield the ``servercov:`` lines that say what each agent answered."""
    for answer in answers:
        url = shown(answer.url)
        if answer.error:
            yield f"agent {url}: {shown(answer.error, 1000)}"
        else:
            yield (f"agent {url}: {'final data' if stop else 'snapshot'}, "
                   f"{answer.size} bytes in {answer.seconds:.2f} s")
        if answer.problem:
            yield f"agent {url}: its data is not whole: {shown(answer.problem)}"
        if answer.warning:
            yield f"agent {url}: warning: {shown(answer.warning)}"


def report_lines(result: data.ReportResult) -> Iterator[str]:
    """Yield the ``servercov:`` lines that say where the reports are and if fail_under failed."""
    for name, place in result.outputs:
        if place != "terminal":
            yield f"{name} report: {place}"
    if result.failed_under:
        yield f"total coverage {result.total:.2f}% is under fail_under {result.fail_under:g}"


def collect(config: ServerConfig, urls: Sequence[str], *, token: str | None, stop: bool,
            out: IO[str], err: IO[str], in_run: bool = False,
            ca_file: str | None = None) -> Collected:
    """Fetch from every agent at once, combine what came back, report; name the failures.

    ``in_run``: at the end of a test run, whose start erased the stale data;
    data files the test runner wrote meanwhile are combined too.
    """
    settings = data.server_settings(config.rcfile)
    local = []
    if in_run:
        data.save_runner_data(settings)
        local = data.data_files(settings)
    else:
        refuse_beside_a_serve(config)
        data.erase_stale_data(settings)
    timeout = 3 * config.shutdown_timeout + 60 if stop else config.shutdown_timeout + 30
    started = time.monotonic()
    answers = fetch_all(urls, stop=stop, token=token, timeout=timeout,
                        data_file=settings.data_file, ca_file=ca_file)
    seconds = time.monotonic() - started
    screen(config, answers)
    collected = Collected(answers, failed=[a for a in answers if a.error or a.problem])
    _say(err, answer_lines(answers, stop=stop))
    files = [a.data_file for a in answers if a.data_file]
    if not files:
        return collected
    collected.result = combine_collected(config, files, out, local=local)
    _say(err, [f"collected {len(files)} of {len(urls)} agents in {seconds:.2f} s; combined "
               f"into {settings.data_file}", *report_lines(collected.result)])
    return collected


def _say(err: IO[str], lines: Iterable[str]) -> None:
    for line in lines:
        err.write(f"servercov: {line}\n")
        err.flush()
