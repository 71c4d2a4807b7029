"""Tell the run who this process is, when it leaves in order, and what makes its data wrong.

Every measured process registers in the run folder (``SERVERCOV_RUN_DIR``)
before it serves anything (``proc.<pid>``: its pid, parent, command line and
start time), marks the start of its orderly exit (``exit.<pid>``: how much it
had measured), and names in ``problem.<pid>`` anything that makes its data
untrustworthy.  The run (``nose2_servercov.engine.data.accounting``) can then tell
a process that saved from one that was killed, and fails for one whose data
cannot be trusted.  The names are :mod:`nose2_servercov.protocol`'s.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from typing import Any

from nose2_servercov import procfs, protocol, safefiles
from nose2_servercov.inserver import coverage_private


def say(message: str) -> None:
    """Print ``message`` on the server's stderr, where servercov shows it; never raise."""
    try:
        sys.stderr.write(f"servercov: pid {os.getpid()}: {message}\n")
    except Exception:
        pass


def report_problem(message: str) -> None:
    """Tell the run of a problem that makes this process's data untrustworthy.

    One line on stderr and one in ``problem.<pid>`` of the run folder, which
    the run names and fails for.
    """
    say(message)
    folder = run_dir()
    if folder:
        try:
            safefiles.append_line(os.path.join(folder, protocol.problem_file(os.getpid())),
                                  message)
        except (OSError, safefiles.UnsafePlace):
            pass


def run_dir() -> str | None:
    """Return the run folder this process reports to, None when no run asked for reports."""
    return os.environ.get(protocol.RUN_DIR_VARIABLE) or None


def replace_atomically(path: str, text: str) -> None:
    """Write ``text`` into ``path`` so that a reader (or a SIGKILL) never meets half of it."""
    safefiles.replace_atomically(path, text)  # never through a link another user planted


def register() -> None:
    """Write ``proc.<pid>`` into the run folder, atomically, before this process serves."""
    folder = run_dir()
    if not folder:
        return
    values = (os.getpid(), os.getppid(),
              procfs.command_line("self") or list(getattr(sys, "orig_argv", sys.argv)),
              procfs.start_time("self"), procfs.executable("self") or sys.executable,
              sys.executable)
    try:
        # A marker of the image this pid ran before an exec is not this one's.
        exit_marker = os.path.join(folder, protocol.exit_file(os.getpid()))
        if os.path.exists(exit_marker):
            os.unlink(exit_marker)
        replace_atomically(os.path.join(folder, protocol.registration_file(os.getpid())),
                           json.dumps(dict(zip(protocol.REGISTRATION_KEYS, values, strict=True))))
    except Exception as exc:
        report_problem(f"cannot register with servercov, its data cannot be accounted "
                       f"for: {exc!r}")


def is_registered() -> bool:
    """Return whether this process has written its ``proc.<pid>`` (False without a run)."""
    folder = run_dir()
    return bool(folder) and os.path.exists(
        os.path.join(folder or "", protocol.registration_file(os.getpid())))


def register_now_and_after_fork() -> None:
    """Register this process now, and each child it forks as the child starts."""
    register()
    os.register_at_fork(after_in_child=register)


def mark_orderly_exit() -> None:
    """Write ``exit.<pid>``: this process reached atexit, so coverage saves its data now."""
    folder = run_dir()
    if not folder:
        return
    try:
        import coverage

        measured = coverage_private.measured_file_count(coverage.Coverage.current())
        replace_atomically(os.path.join(folder, protocol.exit_file(os.getpid())),
                           json.dumps({protocol.EXIT_MEASURED_KEY: measured}))
    except Exception:
        pass


def mark_orderly_exits() -> None:
    """Mark every orderly exit: atexit, and ``os._exit`` and the exec family too.

    coverage's own patches save at ``os._exit`` and exec, where atexit never
    runs; ours wrap theirs, so the marker is written before coverage saves.
    """
    atexit.register(mark_orderly_exit)

    def wrap(name: str) -> None:
        original = getattr(os, name)

        def marked(*args: Any, **kwargs: Any) -> Any:
            mark_orderly_exit()
            return original(*args, **kwargs)

        setattr(os, name, marked)

    for name in ("_exit", "execv", "execve"):
        wrap(name)
