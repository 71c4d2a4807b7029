"""uWSGI, with or without its master, its master FIFO, threads or async cores."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from nose2_servercov import procfs
from nose2_servercov.app.servers.base import Environ, Server

# The longest the shutdown route waits for uWSGI workers still booting (the
# master pauses two seconds when it respawns workers too fast).
UWSGI_SETTLE_SECONDS = 5.0


class UwsgiServer(Server):
    """uWSGI: ``q`` on the master FIFO, else SIGINT to the master, else HUP to each worker.

    Under a master the stop may happen during the request
    (:meth:`stop_in_request`), once the workers still booting have booted.
    """

    name = "uwsgi"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return "uwsgi.version" in environ or "uwsgi" in sys.modules

    def stop_in_request(self) -> bool:
        """Under a uWSGI master, wait for booting workers, then stop it now if that is safe.

        Return whether it was stopped.  A single-core worker that writes ``q``
        during the request gets the master's SIGHUP while it is busy, and its
        handler only marks it to leave after the answer.  Sent after the answer,
        the same SIGHUP can meet this worker on its way out (recycled by
        max-requests after this very request) and end its save with exit().  With
        threads the handler never exits; in async mode it exits at once, so there
        the stop waits for the answer to be out.
        """
        uwsgi: Any = sys.modules.get("uwsgi")
        if uwsgi is None:
            return False
        try:
            if not uwsgi.masterpid():
                return False
            await_uwsgi_workers(uwsgi)
            if getattr(uwsgi, "cores", 0) != 1 or not master_fifo(uwsgi):
                return False
            self.stop()
            return True
        except Exception as exc:  # the stop after the answer still happens
            sys.stderr.write(f"servercov: cannot stop uWSGI from the request: {exc!r}\n")
            return False

    def stop(self) -> None:
        """Stop uWSGI so that every worker finishes its requests and runs atexit."""
        import uwsgi  # the module uWSGI gives the Python it embeds

        fifo = master_fifo(uwsgi)
        if fifo:
            # 'q' on the master FIFO is uWSGI's graceful shutdown; TERM only reloads 2.0.
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, b"q")
            finally:
                os.close(fd)
        elif uwsgi.masterpid():
            os.kill(uwsgi.masterpid(), signal.SIGINT)
        else:
            # No master: every worker is its own server; HUP lets each finish and exit.
            os.killpg(os.getpgid(0), signal.SIGHUP)


def master_fifo(uwsgi: Any) -> str | None:
    """Return the uWSGI master's FIFO, where ``q`` is its graceful shutdown; None without."""
    fifo = uwsgi.opt.get("master-fifo")
    if isinstance(fifo, bytes):
        fifo = fifo.decode()
    return str(fifo) if fifo and uwsgi.masterpid() else None


def has_worker_handlers(pid: int) -> bool:
    """Return whether uWSGI process ``pid`` is alive and has its worker's signal handlers.

    Only a worker catches SIGUSR2 (uWSGI's "what am I doing"), and it sets that
    handler with its stop handlers, once its boot is over; a zombie is not alive.
    """
    found = procfs.caught_signals(pid)
    if found is None:
        return False
    state, caught = found
    return state not in ("Z", "X") and bool(caught & (1 << (signal.SIGUSR2 - 1)))


def await_uwsgi_workers(uwsgi: Any) -> None:
    """Wait, a bounded time, until no other uWSGI worker is waiting for its respawn or booting.

    uWSGI's stop (the master's SIGHUP to each worker) is lost on a worker forked
    a moment before: until its boot installs the worker's handlers it runs the
    master's, which ignore it, and the master then waits for it for good.
    Workers recycled at the end of a suite (max-requests), and the master's
    two-second pause when it respawns them "too fast", open that window right
    when the shutdown comes.
    """
    if not has_worker_handlers(os.getpid()):
        return  # a uWSGI whose workers do not catch SIGUSR2: nothing to go by
    deadline = time.monotonic() + UWSGI_SETTLE_SECONDS
    while time.monotonic() < deadline:
        # pid 0: reaped and not respawned yet (cheap: stopped on purpose, no respawn).
        pids = [worker["pid"] for worker in uwsgi.workers()
                if worker["pid"] != os.getpid() and worker["status"] != "cheap"]
        if all(pid and has_worker_handlers(pid) for pid in pids):
            return
        time.sleep(0.01)
