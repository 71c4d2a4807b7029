"""The SIGINT/SIGTERM handler of every front end: the first signal unwinds, later ones wait.

An exception raised from a signal handler lands wherever the main thread
is: a second one could cut the stop or the report short, or lose the exit
status of ``run``'s command inside ``waitpid``.  So the handler raises at
most once, and only while ``raising`` is true (the server starting, the
tests running); every signal is recorded, and the front end acts on the
record where it is safe to.
"""

from __future__ import annotations

from typing import Any


class OneShotInterrupt:
    """Record every stop signal; call :meth:`interrupt` for the first, while ``raising``."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.raising = True

    def __call__(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if self.raising:
            self.raising = False
            self.interrupt(signum)
        else:
            self.again(signum)

    def interrupt(self, signum: int) -> None:
        """Unwind what runs now (KeyboardInterrupt: unittest ends the run on it)."""
        raise KeyboardInterrupt

    def again(self, signum: int) -> None:
        """A signal that arrived once unwinding was over: noted only."""
