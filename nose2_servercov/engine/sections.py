"""The ``[servercov:NAME]`` sections of a local run: ports, placeholders, start and stop order.

Sections start in file order, each ready before the next, all before the
main server; they stop after it, in reverse order (the main server first,
so the jobs it enqueued are still run by the workers, then the workers,
then the helpers such as Redis).  A section that fails to start stops every
section started before it, and the failure names it with its last output
lines.  The environment of a measured section is built by the run (it is
the main server's, with the section's own ``env``); one with
``measured = false`` gets the runner's environment without anything of
coverage or servercov: it runs as it is.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nose2_servercov import procfs, protocol
from nose2_servercov.engine.config import SECTION, SectionConfig, ServerConfig
from nose2_servercov.engine.server import network
from nose2_servercov.engine.server.process import StopOutcome
from nose2_servercov.engine.server.service import NO_PORT, Readiness, Service, Stopping
from nose2_servercov.errors import ServerStartError, describe_os_error

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_-]+)\}")
# What an unmeasured section must not inherit: it would measure itself, or
# report into this run.
NOT_FOR_UNMEASURED = (protocol.COVERAGE_START_VARIABLE, protocol.COVERAGE_CONFIG_VARIABLE,
                      protocol.COVERAGE_FILE_VARIABLE)


def base_url(host: str, port: int) -> str:
    """Return ``http://host:port``, an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace the known ``{name}`` placeholders of an ``env`` value; keep any other brace."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def pick_port(host: str, port: int, *, rcfile: Path, section: str) -> int:
    """Return ``port``, or a free one for 0; refuse a fixed port another program holds."""
    if port == 0:
        try:
            return network.pick_free_port(host)
        except OSError as exc:
            raise ServerStartError(
                f"{rcfile}: [{section}] host: no free port to listen on at {host} "
                f"({describe_os_error(exc)}); expected an address of this machine") from None
    if network.port_accepts(host, port):
        raise ServerStartError(
            f"port {port} on {host} is in use by another program: stop that program, or set "
            f"another port (port = 0 picks a free one) in {rcfile} [{section}]")
    return port


@dataclass(frozen=True)
class Placed:
    """A section with its port chosen for this run."""

    config: SectionConfig
    port: int  # NO_PORT: none

    @property
    def url(self) -> str:
        """Return its base URL, "" without a port."""
        return base_url(self.config.host, self.port) if self.port != NO_PORT else ""

    def values(self) -> dict[str, str]:
        """Return the placeholders it gives every command: {NAME_port} and the like."""
        if self.port == NO_PORT:
            return {}
        name = self.config.name
        return {f"{name}_port": str(self.port), f"{name}_host": self.config.host,
                f"{name}_url": self.url}

    def test_env(self) -> dict[str, str]:
        """Return what the tests see of it: SERVERCOV_URL_<NAME> and SERVERCOV_PORT_<NAME>."""
        if self.port == NO_PORT:
            return {}
        suffix = self.config.variable_suffix
        return {protocol.SECTION_URL_PREFIX + suffix: self.url,
                protocol.SECTION_PORT_PREFIX + suffix: str(self.port)}


def place(config: ServerConfig, *, taken: Sequence[int] = ()) -> list[Placed]:
    """Choose every section's port for this run (before anything starts: all are named).

    Free ports are picked apart from each other and from ``taken`` (the
    server's): the kernel may hand out a closed port again at once.
    """
    chosen = set(taken)
    placed = []
    for section in config.sections:
        port = NO_PORT
        for _ in range(20):  # a few tries; another program may be picking ports too
            if not section.has_port:
                break
            port = pick_port(section.host, section.port, rcfile=config.rcfile,
                             section=f"{SECTION}:{section.name}")
            if port not in chosen or section.port:
                break
        chosen.add(port)
        placed.append(Placed(section, port))
    return placed


def unmeasured_env(section: SectionConfig, values: Mapping[str, str]) -> dict[str, str]:
    """Return the environment of a section started as it is: nothing of coverage or ours."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(protocol.VARIABLE_PREFIX) and name not in NOT_FOR_UNMEASURED}
    env.update({name: fill(value, values) for name, value in section.env.items()})
    return env


class Sections:
    """The started sections of one run, in start order."""

    def __init__(self, placed: list[Placed], *, config: ServerConfig, token: str,
                 echo: IO[str] | None, err: IO[str], say: Callable[[str], None]) -> None:
        self.placed = placed
        self.err = err
        self.config = config
        self.token = token
        self.echo = echo
        self.say = say
        self.started: list[tuple[Placed, Service]] = []
        self.problems: list[str] = []  # the sections that ended with an error by themselves

    def values(self) -> dict[str, str]:
        """Return every section's placeholders, and ``{python}``."""
        values = {"python": sys.executable}
        for placed in self.placed:
            values.update(placed.values())
        return values

    def test_env(self) -> dict[str, str]:
        """Return the variables naming every section with a port."""
        env: dict[str, str] = {}
        for placed in self.placed:
            env.update(placed.test_env())
        return env

    def _service(self, placed: Placed, env: Mapping[str, str]) -> Service:
        section = placed.config
        own = {**self.values(), "host": section.host,
               "port": "" if placed.port == NO_PORT else str(placed.port), "url": placed.url}
        return Service(
            [word.format(**own) for word in section.command], cwd=section.cwd,
            env={**env, **{name: fill(value, own) for name, value in section.env.items()}},
            log=section.log, echo=self.echo, rcfile=self.config.rcfile, name=section.name,
            readiness=Readiness(section.host, placed.port, placed.url, section.ready_path,
                                section.ready_output, section.startup_timeout),
            stopping=Stopping(section.shutdown_path, "POST", section.stop_signal,
                              section.shutdown_timeout, self.token))

    def start(self, measured_env: Mapping[str, str], *, hold: Sequence[int]) -> None:
        """Start every section in file order, each ready before the next.

        On a failure, or an interrupt, every section already started is
        stopped (reverse order) before the error goes on, naming the section.
        """
        for placed in self.placed:
            section = placed.config
            env = measured_env if section.measured else unmeasured_env(section, self.values())
            service = self._service(placed, env)
            try:
                service.start(hold=hold)
                self.started.append((placed, service))
                seconds = service.wait_until_ready()
                self._check_still_running()
            except ServerStartError as exc:
                self.stop(save=None, quiet=True)
                named = str(exc) if str(exc).startswith(f"[{SECTION}:") \
                    else f"[{SECTION}:{section.name}] {exc}"
                raise ServerStartError(named) from None
            except BaseException:
                self.stop(save=None, quiet=True)
                raise
            where = f", {placed.url}" if placed.url else ""
            kind = "" if section.measured else ", not measured"
            self.say(f"section {section.name} started: pid {service.pid}{where}, "
                     f"ready in {seconds:.2f} s{kind}")

    def _check_still_running(self) -> None:
        """Refuse a section that already ended with an error (one ready once started, say)."""
        for placed, service in self.started:
            code = service.process.exit_code()
            if code:
                raise ServerStartError(
                    f"[{SECTION}:{placed.config.name}] exited with code {code} before the "
                    f"server started ({' '.join(service.process.argv)}); its last output "
                    "lines:\n" + service.process.tail(settle=1.0))

    def measured_groups(self) -> list[int]:
        """Return the process groups of the started measured sections."""
        return [service.pid for placed, service in self.started if placed.config.measured]

    def members(self) -> dict[int, str]:
        """Return the live processes of every started section: pid -> NAME."""
        found: dict[int, str] = {}
        for placed, service in self.started:
            found[service.pid] = placed.config.name
            for pid in procfs.group_members(service.pid):
                found[pid] = placed.config.name
        return found

    def stop(self, *, save: Callable[[int], list[str]] | None, quiet: bool = False,
             tail_on_notes: bool = True) -> list[StopOutcome]:
        """Stop every started section, last started first; idempotent.

        ``save(pgid)`` asks a measured section's processes to save before its
        stop signal.
        """
        outcomes = []
        for placed, service in reversed(self.started):
            first = not service.process.stopped
            group = service.pid
            before = (lambda group=group: save(group)) if save and placed.config.measured \
                else None
            outcome = service.stop(before)
            outcomes.append(outcome)
            if first and outcome.exited_early and outcome.exit_code:
                self.problems.append(
                    f"[{SECTION}:{placed.config.name}] exited with code {outcome.exit_code} "
                    "while the tests ran; what it executed until then is kept")
            if first and not quiet:
                self.say(f"section {placed.config.name} stopped by {outcome.step} in "
                         f"{outcome.seconds:.2f} s")
                for note in outcome.notes:
                    self.say(f"  {note}")
                if outcome.notes and tail_on_notes:
                    self.err.write(service.process.tail() + "\n")
        return outcomes


def with_section(line: str, section_of: Mapping[int, str], parents: Mapping[int, int]) -> str:
    """Name the section of the process a line is about (its parents', if it had ended).

    ``section_of``: the sections' processes seen before the stop; ``parents``:
    each registered process's parent, for one that ended while the tests ran.
    """
    match = re.match(r"pid (\d+)", line)
    if match is None:
        return line
    pid, seen = int(match.group(1)), set()
    while pid not in section_of and pid in parents and pid not in seen:
        seen.add(pid)
        pid = parents[pid]
    name = section_of.get(pid)
    return f"[{SECTION}:{name}] {line}" if name else line
