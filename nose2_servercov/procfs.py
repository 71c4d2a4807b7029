"""Read what Linux's ``/proc`` tells of processes: the one reader of ``/proc`` in servercov.

servercov proves who is who from ``/proc``: a pid's start time (so a reused
pid is never taken for the process it once was), its process group and
parent, its command line, its signal handlers and its sockets.  Every module
that needs one of these asks here.  Like :mod:`nose2_servercov.protocol` it
imports only the standard library: the keeper (run as ``python -I -S``), the
code inside the server processes and the app helpers read ``/proc`` through
it too.  Every function returns None (or nothing) for a process that is gone
or unreadable, never raises.
"""

from __future__ import annotations

import contextlib
import os

_GONE = (b"Z", b"X")  # zombie, dead: not alive, whatever /proc still shows


class ProcessStat:
    """The fields of ``/proc/<pid>/stat`` servercov uses.

    A plain class, not a dataclass or a NamedTuple: the keeper loads this
    module in a bare ``python -I -S``, where importing ``dataclasses`` or
    ``typing`` alone took more CPU than everything else it does.
    """

    __slots__ = ("flags", "pgid", "pid", "ppid", "start", "state")

    def __init__(self, pid: int, state: bytes, ppid: int, pgid: int, flags: int,
                 start: int) -> None:
        self.pid = pid
        self.state = state  # one letter: R, S, D, Z, X, ...
        self.ppid = ppid
        self.pgid = pgid
        self.flags = flags
        self.start = start  # clock ticks since boot

    def __repr__(self) -> str:
        return (f"ProcessStat(pid={self.pid}, state={self.state!r}, ppid={self.ppid}, "
                f"pgid={self.pgid}, flags={self.flags}, start={self.start})")

    @property
    def alive(self) -> bool:
        """Return whether the process runs (it is neither a zombie nor dead)."""
        return self.state not in _GONE


def stat(pid: int | str) -> ProcessStat | None:
    """Return ``/proc/<pid>/stat`` of ``pid`` (``"self"`` for this process), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = raw[raw.rfind(b")") + 2:].split()
        return ProcessStat(int(raw.split(b" ", 1)[0]), fields[0], int(fields[1]),
                           int(fields[2]), int(fields[6]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int | str) -> int | None:
    """Return when ``pid`` started (clock ticks since boot), None if it is gone or a zombie."""
    found = stat(pid)
    return found.start if found is not None and found.alive else None


def is_alive(pid: int, *, started: int | None = None, pgid: int | None = None) -> bool:
    """Return whether ``pid`` runs, is still the process that started at ``started``
    and is in group ``pgid`` (each check only when given)."""
    found = stat(pid)
    return (found is not None and found.alive
            and (started is None or found.start == started)
            and (pgid is None or found.pgid == pgid))


def has_proc() -> bool:
    """Return whether this system has a Linux ``/proc``."""
    return os.path.isdir("/proc/self")


def all_processes() -> dict[int, ProcessStat] | None:
    """Return every live process by pid, None without ``/proc``."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    found = {}
    for entry in entries:
        if entry.isdigit():
            one = stat(entry)
            if one is not None and one.alive:
                found[one.pid] = one
    return found


def group_members(pgid: int) -> list[int]:
    """Return the live processes of process group ``pgid``."""
    if not has_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    return sorted(pid for pid, one in (all_processes() or {}).items() if one.pgid == pgid)


def command_line(pid: int | str) -> list[str] | None:
    """Return the command line of ``pid``, None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return []
    return [word.decode("utf-8", "surrogateescape") for word in raw.rstrip(b"\0").split(b"\0")]


def executable(pid: int | str) -> str | None:
    """Return the path of the program ``pid`` runs, None if unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def caught_signals(pid: int | str) -> tuple[str, int] | None:
    """Return the state letter of ``pid`` and the mask of the signals it catches."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return fields.get("State", "").strip()[:1], int(fields["SigCgt"], 16)
    except (OSError, KeyError, ValueError):
        return None


def socket_inodes(pid: int) -> set[str]:
    """Return the inodes of the sockets ``pid`` holds open."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def working_directory(pid: int | str) -> str | None:
    """Return the folder ``pid`` works in, None if it is gone or unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


_TCP_LISTEN = "0A"  # the state column of /proc/net/tcp: LISTEN


def listening_inodes(port: int) -> set[str] | None:
    """Return the inodes of TCP sockets listening on ``port``, None without ``/proc/net``.

    ``/proc/net/tcp`` lists every socket (tens of thousands in TIME_WAIT after
    a load test): a slow way, for where the kernel's sock_diag cannot be asked.
    """
    inodes: set[str] = set()
    seen_any = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        seen_any = True
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes if seen_any else None
