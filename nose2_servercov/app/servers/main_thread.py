"""Servers that serve from their process's main thread, and the fallback for any other.

Werkzeug's dev server, waitress, wsgiref, Django's runserver: the stop is a
SystemExit in the main thread, which servercov's in-server hook raises for
SIGTERM; each server then leaves its loop and closes its sockets.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import time

from nose2_servercov.app.servers.base import Environ, Server

# A stop aimed at the main thread is sent again this often until the process is
# exiting: a single-threaded server (wsgiref) may swallow the first SystemExit in
# the bare ``except:`` around the request it is finishing.
RESIGNAL_SECONDS = 0.1
RESIGNAL_LIMIT = 100


class MainThreadServer(Server):
    """Any server not recognised otherwise (wsgiref, gevent's or eventlet's WSGI server...).

    The last of the registry: it recognises every process.
    """

    name = "other"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return True

    def stop(self) -> None:
        stop_main_thread()


def stop_main_thread() -> None:
    """Send SIGTERM to the main thread until the process is on its way out.

    servercov's in-server hook turns it into SystemExit; the select() of a
    server waiting for connections wakes up at once.  A server that swallows
    the SystemExit while it finishes a request gets it again, until the main
    thread has finished or atexit has begun (a TERM then would cut the save).
    """
    if monkey_patched():
        exit_main_greenlet()
        return
    exiting = threading.Event()
    atexit.register(exiting.set)  # registered last, so it runs first at exit
    main = threading.main_thread()
    for _ in range(RESIGNAL_LIMIT):
        if exiting.is_set() or not main.is_alive():
            return
        signal.pthread_kill(main.ident or 0, signal.SIGTERM)
        time.sleep(RESIGNAL_SECONDS)


def monkey_patched() -> bool:
    """Return whether gevent or eventlet has patched threading (thread idents are greenlets')."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    try:
        return bool((gevent_monkey and gevent_monkey.is_module_patched("threading"))
                    or (eventlet_patcher and eventlet_patcher.is_monkey_patched("thread")))
    except Exception:
        return False


def exit_main_greenlet() -> None:
    """Raise SystemExit in the program's main greenlet, as gevent does for Ctrl-C.

    Under gevent or eventlet this "thread" is a greenlet of the main thread: a
    signal sent from here would run its handler here, and threading swallows a
    SystemExit raised in a thread.
    """
    import greenlet  # type: ignore[import-untyped]

    root = greenlet.getcurrent()
    while root.parent is not None:
        root = root.parent
    root.throw(SystemExit(128 + signal.SIGTERM))
