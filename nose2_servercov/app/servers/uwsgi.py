"""uWSGI, with or without its master, its master FIFO, threads or async cores."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import sys
import termios
import time
from typing import Any

from nose2_servercov import procfs
from nose2_servercov.app.servers.base import Environ, Server

# The longest the shutdown route waits for uWSGI workers still booting (the
# master pauses two seconds when it respawns workers too fast).
UWSGI_SETTLE_SECONDS = 5.0
# The longest the shutdown route waits for the master to act on its ``q``.
UWSGI_QUIT_SECONDS = 3.0


class UwsgiServer(Server):
    """uWSGI: ``q`` on the master FIFO, else SIGINT to the master, else HUP to each worker.

    Under a master the stop may happen during the request
    (:meth:`stop_in_request`), once the workers still booting have booted; the
    request then lasts until the master has acted on it.
    """

    name = "uwsgi"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return "uwsgi.version" in environ or "uwsgi" in sys.modules

    def stop_in_request(self) -> bool:
        """Under a uWSGI master, wait for booting workers, then stop it now if that is safe.

        Return whether it was stopped.  A single-core worker writes ``q`` during
        the request and waits there (:func:`await_uwsgi_master`) until the master
        has read it and sent its SIGHUPs: the master acts on its FIFO in its own
        time, and its SIGHUP must find this worker busy, where the handler only
        marks it to leave after the answer.  Once the request is over, the same
        SIGHUP can meet this worker on its way out (recycled by max-requests
        after this very request) and end its save with exit().  With threads
        the handler never exits; in async mode it exits at once, so there the
        stop waits for the answer to be out.
        """
        uwsgi: Any = sys.modules.get("uwsgi")
        if uwsgi is None:
            return False
        try:
            if not uwsgi.masterpid():
                return False
            await_uwsgi_workers(uwsgi)
            fifo = master_fifo(uwsgi)
            if getattr(uwsgi, "cores", 0) != 1 or not fifo:
                return False
            watch = quit_by_fifo(fifo, watch=True)
        except Exception as exc:  # the stop after the answer still happens
            sys.stderr.write(f"servercov: cannot stop uWSGI from the request: {exc!r}\n")
            return False
        if watch is not None:
            try:
                acted = await_uwsgi_master(uwsgi.masterpid(), watch)
            except Exception:  # nothing to go by: the stop is asked all the same
                acted = True
            finally:
                os.close(watch)
            if not acted:
                sys.stderr.write(f"servercov: uWSGI's master did not act on 'q' within "
                                 f"{UWSGI_QUIT_SECONDS:g} s: its stop may end worker "
                                 f"{os.getpid()} before it saves\n")
        return True

    def stop(self) -> None:
        """Stop uWSGI so that every worker finishes its requests and runs atexit."""
        import uwsgi  # the module uWSGI gives the Python it embeds

        fifo = master_fifo(uwsgi)
        if fifo:
            # 'q' on the master FIFO is uWSGI's graceful shutdown; TERM only reloads 2.0.
            quit_by_fifo(fifo)
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


def quit_by_fifo(fifo: str, *, watch: bool = False) -> int | None:
    """Write ``q`` to the master FIFO; with ``watch``, return a descriptor that reads it.

    The descriptor, read-only, is opened on the very FIFO written (through
    /proc/self/fd, before the write end closes) and never read from: only
    asked how much waits unread (:func:`fifo_unread`).  None without it.
    """
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO: the master does not read it
    try:
        os.write(fd, b"q")
        if watch:
            try:
                return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                return None
        return None
    finally:
        os.close(fd)


def fifo_unread(fd: int) -> int:
    """Return how many bytes wait unread in the FIFO ``fd`` reads (FIONREAD: none are read)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])


def await_uwsgi_master(master: int, watch: int) -> bool:
    """Wait, a bounded time, until the master has read ``q`` and sent its SIGHUPs; return whether.

    ``watch`` reads the FIFO the ``q`` was written to.  Once the master has
    read it (nothing waits unread) it runs its graceful shutdown: a SIGHUP to
    each worker, then it blocks (waiting for them; before 2.0.28, back in its
    loop).  So read and then asleep (state S) means that the SIGHUP to this
    worker is sent; a thread runs its pending handlers before it goes on, so
    uWSGI's handler sees this request still open.  A master stopped, or busy
    elsewhere for seconds, runs the bound out.
    """
    deadline = time.monotonic() + UWSGI_QUIT_SECONDS
    while time.monotonic() < deadline:
        if fifo_unread(watch) == 0:
            found = procfs.stat(master)
            if found is None or not found.alive or found.state == b"S":
                return True
        time.sleep(0.01)
    return False
