"""Which coverage core measures the server processes: the fastest one that stays exact.

coverage.py has three cores: ``sysmon`` (sys.monitoring, Python 3.12+, nearly
free), ``ctrace`` (the C tracer, its default) and ``pytrace``.  coverage uses
sysmon only when asked, and when asked falls back to the C tracer, with a
warning in the server's output that nobody reads, where the config needs what
sysmon lacks.  ``[servercov] core = auto`` asks for sysmon exactly where it is
safe and says on the start line which core the server uses and why.
``contexts = test`` keeps sysmon: servercov re-arms its events at each
context switch (app/contexts.py), where the running coverage's sysmon core is
the one it knows how to re-arm (coverage_private.sysmon_contexts_refusal).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nose2_servercov.errors import ConfigError
from nose2_servercov.inserver import coverage_private
from nose2_servercov.protocol import COVERAGE_CORE_VARIABLE

if TYPE_CHECKING:  # the key table reads CHOICES: `servercov stop` must not import coverage
    from coverage.config import CoverageConfig

CORES = ("ctrace", "sysmon", "pytrace")
CHOICES = ("auto", *CORES)  # what [servercov] core accepts (the key table reads it here)
# coverage cannot measure these with sys.monitoring (coverage/core.py; 7.10 does not
# check them itself and would measure greenlets wrongly).
_GREEN_CONCURRENCY = ("greenlet", "eventlet", "gevent")


@dataclass(frozen=True)
class CoreChoice:
    """The core the server processes use, and why (empty when it is simply the fastest)."""

    core: str
    why: str = ""

    def describe(self) -> str:
        """Return the start line's words for it: ``core sysmon`` or ``core ctrace (...)``."""
        return f"core {self.core}" + (f" ({self.why})" if self.why else "")


def sysmon_obstacle(settings: CoverageConfig, *, contexts_test: bool) -> str:
    """Return why sys.monitoring cannot measure ``settings`` exactly here, or ''."""
    from coverage import env as coverage_env

    behaviour = coverage_env.PYBEHAVIOR
    if not getattr(behaviour, "pep669", False):
        return "sys.monitoring needs Python 3.12+"
    if settings.branch and not getattr(behaviour, "branch_right_left", False):
        return "branch = True needs the C tracer before Python 3.14"
    if contexts_test:
        refusal = coverage_private.sysmon_contexts_refusal()
        if refusal:
            return f"contexts = test needs the C tracer here: {refusal}"
    if settings.dynamic_context:
        return f"dynamic_context = {settings.dynamic_context} needs the C tracer"
    green = [name for name in _GREEN_CONCURRENCY if name in (settings.concurrency or ())]
    if green:
        return f"concurrency = {green[0]} needs the C tracer"
    if settings.plugins:
        return "coverage plugins need the C tracer"
    return ""


def _users_core(settings: CoverageConfig, server_env: Mapping[str, str]) -> tuple[str, str]:
    """Return the core the user set outside ``[servercov]`` and where, or ('', '')."""
    if server_env.get(COVERAGE_CORE_VARIABLE):
        return server_env[COVERAGE_CORE_VARIABLE], COVERAGE_CORE_VARIABLE
    if settings.core:  # read_coverage_config put COVERAGE_CORE of our environment here too
        origin = (COVERAGE_CORE_VARIABLE if os.environ.get(COVERAGE_CORE_VARIABLE)
                  else "[run] core")
        return settings.core, origin
    return "", ""


def choose_core(settings: CoverageConfig, key: str, *, contexts_test: bool,
                server_env: Mapping[str, str], origin: str) -> CoreChoice:
    """Return the core for the server processes, from ``[servercov] core`` (``key``).

    ``auto``: the user's own ``[run] core`` or ``COVERAGE_CORE`` wins; else
    sysmon where it measures the effective config exactly, else the C tracer.
    A wish for sysmon that sysmon cannot honour gives the C tracer, said so.
    ``server_env`` is the ``[servercov] env`` (a ``COVERAGE_CORE`` there is the
    user's too).  ``origin`` names the rcfile for errors.
    """
    if settings.timid:
        return CoreChoice("pytrace", "[run] timid = True")
    wish, asked_by = (key, "[servercov] core") if key != "auto" else _users_core(
        settings, server_env)
    if wish and wish not in CORES:
        raise ConfigError(f"{origin}: {asked_by}: expected one of {', '.join(CORES)}, "
                          f"got {wish!r}")
    asked = f"{asked_by}={wish}" if asked_by == COVERAGE_CORE_VARIABLE else f"{asked_by} = {wish}"
    obstacle = sysmon_obstacle(settings, contexts_test=contexts_test)
    if wish in ("", "sysmon") and obstacle:
        choice = CoreChoice("ctrace", f"{asked}, but {obstacle}" if wish else obstacle)
    elif not wish:
        choice = CoreChoice("sysmon")
    else:
        choice = CoreChoice(wish, asked if asked_by != "[servercov] core" else "")
    if choice.core == "ctrace" and not _c_tracer_available():
        return CoreChoice("pytrace", "coverage's C tracer is not installed")
    return choice


def _c_tracer_available() -> bool:
    from coverage import core

    return bool(getattr(core, "CTRACER_FILE", True))
