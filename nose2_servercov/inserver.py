"""The code that runs inside every server process (loaded by bootstrap/sitecustomize.py).

It imports only the standard library and coverage, stays a few dozen lines,
and never raises into the server: a failure is printed on the server's
stderr, where servercov shows it, and the server runs on unmeasured.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"servercov: pid {os.getpid()}: {message}\n")
    except Exception:
        pass


def _start_coverage() -> Any:
    """Start coverage from servercov's environment (a no-op if coverage's .pth did)."""
    try:
        import coverage
    except ImportError:
        _say(f"coverage is not installed for {sys.executable}: this process is not measured")
        return None
    coverage.process_startup()
    return coverage.Coverage.current()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into an orderly exit, so that atexit saves the coverage data.

    Saving from inside the handler could deadlock on the collector's lock while
    a request is traced; raising SystemExit unwinds to the normal exit instead.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _save_on_sigterm() -> None:
    """Install the SIGTERM handler where the process has none of its own."""
    is_main = threading.current_thread() is threading.main_thread()
    if is_main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def install() -> None:
    """Start measuring this process and make its orderly stops save the data."""
    if _start_coverage() is None:
        return
    _save_on_sigterm()
