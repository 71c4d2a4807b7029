"""The state file of a running ``servercov serve``: how snapshot and stop find it.

``serve`` writes ``.servercov/serve.json`` in the rcfile's folder (folder
mode 0700, file 0600: what it holds is the user's alone).  A serve that
crashed leaves it behind; its pid may since belong to another process, so
the file also holds the serve's start time from ``/proc``, and a state whose
process is gone or is not the same process is stale: never obeyed, replaced
by the next serve.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from nose2_servercov.errors import ServeError
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


def running_serve(rcfile: Path) -> ServeState:
    """Return the state of the serve running for ``rcfile``; raise if none runs."""
    state = read_state(state_path(rcfile))
    if state is None or not state.is_running():
        raise ServeError(f"no servercov serve is running for {rcfile}")
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
