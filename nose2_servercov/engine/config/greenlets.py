"""gevent and eventlet servers: tell coverage, from the server command, that greenlets run.

Without ``[run] concurrency = gevent`` (or eventlet) coverage records, at each
greenlet switch, lines of other frames against the wrong file: line numbers
beyond the end of the file, arcs that cannot exist.  When the command says the
server runs greenlets (gunicorn ``-k gevent``, uWSGI ``--gevent``), the
settings handed to the server processes say so too.  A process that turns out
to run greenlets that nothing announced is refused from inside the server
(by :mod:`nose2_servercov.inserver`, at exit): coverage cannot be told after it
has started.
"""

from __future__ import annotations

from collections.abc import Sequence

from coverage.config import CoverageConfig

LIBRARIES = ("gevent", "eventlet")
# gunicorn's worker classes, by short name or dotted path (gunicorn.workers.ggevent...).
_GUNICORN_CLASS = {"gevent": "gevent", "gevent_wsgi": "gevent", "gevent_pywsgi": "gevent",
                   "ggevent": "gevent", "eventlet": "eventlet", "geventlet": "eventlet"}


def _worker_class_library(value: str) -> str | None:
    value = value.rsplit("#", 1)[-1]  # egg:gunicorn#gevent
    for part in value.lower().split("."):
        if part in _GUNICORN_CLASS:
            return _GUNICORN_CLASS[part]
    return None


def library_in_command(argv: Sequence[str]) -> str | None:
    """Return the greenlet library the server command asks for, None if it names none."""
    words = list(argv)
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if word in ("-k", "--worker-class"):
            value = following
        elif word.startswith("--worker-class="):
            value = word.split("=", 1)[1]
        elif word.startswith("-k") and len(word) > 2:
            value = word[2:]
        elif word in ("--gevent", "--gevent-early-monkey-patch") or word.startswith("--gevent="):
            return "gevent"  # uWSGI's gevent loop
        elif word == "-m" and following == "gevent.monkey":
            return "gevent"  # python -m gevent.monkey app.py
        else:
            continue
        found = _worker_class_library(value)
        if found:
            return found
    return None


def announce(settings: CoverageConfig, argv: Sequence[str]) -> str | None:
    """Add the command's greenlet library to ``settings.concurrency``; return it if added.

    A light-thread choice the user made (greenlet, gevent, eventlet) is kept as it is.
    """
    library = library_in_command(argv)
    current = list(settings.concurrency or ())
    if library is None or set(current) & {"greenlet", *LIBRARIES}:
        return None
    settings.concurrency = sorted(set(current) | {library, "thread"})
    return library


def announced(settings: CoverageConfig, argv: Sequence[str]) -> CoverageConfig:
    """Return ``settings`` with the command's greenlet library announced (see announce)."""
    announce(settings, argv)
    return settings
