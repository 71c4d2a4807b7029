"""Tell, within seconds, a server that listens on another port than the one servercov gave it.

A ``command`` without ``{port}`` (Flask's default 5000, a port written in
the app) starts a server that never answers where servercov waits: without
this watch the start waited the whole ``startup_timeout`` (31.3 s measured)
and said only "not ready".  While the start waits, the kernel is asked
which ports the server's process group listens on (sock_diag, the same
source as the readiness check's owner test); once the group has listened
elsewhere for ``grace`` seconds and still not on ours, the start fails,
naming both ports.  The grace lets a server open a side port (metrics,
debug) before its main one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from nose2_servercov.engine.server import network
from nose2_servercov.errors import ServerStartError

GRACE = 2.0  # seconds a foreign listener may precede ours
EVERY = 0.1  # seconds between two looks: a netlink dump each, never every 5 ms poll


class WrongPortWatch:
    """Watch the server's listeners while it starts; name a port that is not ours."""

    def __init__(self, port: int, *, rcfile: Path, tail: Callable[[], str],
                 grace: float = GRACE, every: float = EVERY) -> None:
        self.port = port
        self.rcfile = rcfile
        self.tail = tail
        self.grace = grace
        self.every = every
        self._next_look = 0.0
        self._foreign_since: float | None = None

    def check(self, members: Callable[[], Iterable[int]]) -> None:
        """Raise ServerStartError once the server's group has listened only elsewhere too long.

        ``members`` returns the pids of the server's process group; it is
        called only when the watch looks (every ``every`` seconds).
        """
        foreign = self.foreign_port(members)
        if foreign is not None:
            raise ServerStartError(
                f"the server listens on port {foreign}, not on port {self.port} that servercov "
                f"gave it: put {{port}} in [servercov] command ({self.rcfile}); its last "
                "output lines:\n" + self.tail())

    def foreign_port(self, members: Callable[[], Iterable[int]]) -> int | None:
        """Return the port the server listens on instead of ours, once the grace is over."""
        now = time.monotonic()
        if now < self._next_look:
            return None
        self._next_look = now + self.every
        ports = network.listening_ports(members())
        if not ports or self.port in ports:  # None: this system cannot tell
            self._foreign_since = None
            return None
        if self._foreign_since is None:
            self._foreign_since = now
        if now - self._foreign_since < self.grace:
            return None
        return min(ports)
