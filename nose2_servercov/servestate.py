"""The state file of a running ``servercov serve``: how snapshot and stop find it.

``serve`` writes ``.servercov/serve.json`` in the rcfile's folder (folder
mode 0700, file 0600: what it holds is the user's alone).  A serve that
crashed leaves it behind; its pid may since belong to another process, so
the file also holds the serve's start time from ``/proc``, and a state whose
process is gone or is not the same process is stale: never obeyed, replaced
by the next serve.  Before ``stop`` signals (or ``snapshot`` trusts) the pid
a state names, the process must also prove to be a ``servercov serve`` for
this very rcfile: its command line (``servercov serve``, ``python -m
nose2_servercov serve``, with its ``--rcfile`` resolved against its working
folder) is read from ``/proc``, so a forged or garbled state file can never
get another process signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from nose2_servercov.config import find_rcfile
from nose2_servercov.errors import ServeError, ServercovError
from nose2_servercov.process import proc_stat

STATE_FILE = Path(".servercov") / "serve.json"


def state_path(rcfile: Path) -> Path:
    """Return where the serve of ``rcfile`` keeps its state."""
    return rcfile.parent / STATE_FILE


def process_start_time(pid: int) -> int | None:
    """Return when ``pid`` started (clock ticks since boot), None if it is gone or a zombie."""
    fields = proc_stat(pid)
    return None if fields is None or fields[0] in (b"Z", b"X") else int(fields[19])


@dataclass(frozen=True)
class ServeState:
    """What snapshot and stop need to know about a running serve."""

    serve_pid: int
    serve_started: int
    server_pgid: int
    url: str
    rcfile: str
    data_file: str

    @classmethod
    def of_this_process(cls, *, server_pgid: int, url: str, rcfile: Path,
                        data_file: str) -> ServeState:
        """Return the state of the serve running in this process."""
        pid = os.getpid()
        return cls(pid, process_start_time(pid) or 0, server_pgid, url, str(rcfile), data_file)

    def is_running(self) -> bool:
        """Return whether the serve that wrote this state still runs (same pid, same start)."""
        return process_start_time(self.serve_pid) == self.serve_started

    def is_serve_for(self, rcfile: Path) -> bool:
        """Return whether the same process still runs, and is a serve of ``rcfile``."""
        return self.is_running() and serves_rcfile(self.serve_pid, rcfile)

    def write(self, path: Path) -> None:
        """Write the state for this user only, atomically."""
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.parent.chmod(0o700)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
        os.replace(temporary, path)


def read_state(path: Path) -> ServeState | None:
    """Return the state in ``path``, None if there is none or it cannot be understood."""
    try:
        return ServeState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _command_line(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [word.decode("utf-8", "surrogateescape") for word in raw.rstrip(b"\0").split(b"\0")]


def _serve_arguments(argv: list[str]) -> list[str] | None:
    """Return the arguments after ``serve`` if ``argv`` runs ``servercov serve``, else None."""
    for index, word in enumerate(argv):
        path = Path(word)
        is_servercov = (path.name == "servercov"
                        or (path.name == "__main__.py" and path.parent.name == "nose2_servercov")
                        or (word in ("nose2_servercov", "nose2_servercov.__main__")
                            and index > 0 and argv[index - 1] == "-m"))
        if is_servercov:
            rest = argv[index + 1:]
            return rest[1:] if rest[:1] == ["serve"] else None
    return None


def _rcfile_argument(arguments: list[str]) -> str | None:
    """Return the ``--rcfile`` value among serve's arguments (argparse takes prefixes too)."""
    for index, word in enumerate(arguments):
        name, equals, value = word.partition("=")
        if len(name) > 3 and "--rcfile".startswith(name):
            if equals:
                return value
            return arguments[index + 1] if index + 1 < len(arguments) else None
    return None


def serves_rcfile(pid: int, rcfile: Path) -> bool:
    """Return whether ``pid`` runs ``servercov serve`` for ``rcfile`` (from its command line)."""
    argv = _command_line(pid)
    arguments = _serve_arguments(argv) if argv else None
    if arguments is None:
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        return find_rcfile(_rcfile_argument(arguments), start=cwd) == rcfile.resolve()
    except (OSError, ServercovError):
        return False


def running_serve(rcfile: Path) -> ServeState:
    """Return the state of the serve running for ``rcfile``; raise if none runs.

    A state whose pid runs but is not a ``servercov serve`` for ``rcfile`` is
    refused, naming the process, so that nothing signals it.
    """
    path = state_path(rcfile)
    state = read_state(path)
    if state is None or not state.is_running():
        raise ServeError(f"no servercov serve is running for {rcfile}")
    if not serves_rcfile(state.serve_pid, rcfile):
        command = " ".join(_command_line(state.serve_pid) or ["?"])[:160]
        raise ServeError(f"{path} names pid {state.serve_pid} ({command}), which is not a "
                         f"servercov serve for {rcfile}: nothing was signalled; remove the file "
                         "if no serve runs")
    return state


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold a lock on the state file: one snapshot (or the final report) at a time."""
    with open(path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
