"""Which helper adds the shutdown route, for the framework of the server's app.

A ``shutdown_path`` that answers 404 most often means the app was never
given servercov's route (``init_app`` forgotten): the run still ends (by
the stop signal, data kept), and the line that says 404 names the helper.
The framework is told from what the runner can see without importing the
app: the command's words and the Python files they name (``app.py``,
``main:app``, ``-m mysite``), read for the framework's import.  When none
is recognised, the line names every helper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

FLASK = "init_app(app) from nose2_servercov.flask"
ASGI = "nose2_servercov.asgi.init_app(app)"
WSGI = "nose2_servercov.wsgi.wrap(app)"
DJANGO = "the middleware nose2_servercov.django.ServercovMiddleware in MIDDLEWARE"
# First match wins: a Django project served by uvicorn still wants the middleware.
MARKERS = (
    (DJANGO, ("django", "manage.py")),
    (ASGI, ("fastapi", "starlette", "uvicorn", "hypercorn", "daphne", "asgi")),
    (FLASK, ("flask",)),
    (WSGI, ("gunicorn", "waitress", "uwsgi", "werkzeug", "wsgi")),
)
READ_LIMIT = 64 * 1024  # the imports are at the top of a file
_MODULE = re.compile(r"^[A-Za-z_][\w.]*$")


def _named_files(command: Sequence[str], cwd: Path) -> list[Path]:
    """Return the Python files the command's words may name: scripts, ``module:app``, modules."""
    files: list[Path] = []
    for word in command[1:]:
        if word.endswith(".py"):
            files.append(cwd / word)
            continue
        module = word.split(":", 1)[0]  # main:app, mysite.wsgi, -m webapp: tried, if present
        if _MODULE.match(module):
            base = cwd / module.replace(".", "/")
            files += [base.with_name(base.name + ".py"), base / "__init__.py"]
    return files


def _text_of(command: Sequence[str], cwd: Path) -> str:
    texts = [" ".join(Path(word).name for word in command)]
    for path in _named_files(command, cwd):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                texts.append(f.read(READ_LIMIT))
        except OSError:
            continue
    return "\n".join(texts).lower()


def answered_404(shutdown_path: str, command: Sequence[str], cwd: Path) -> str:
    """Return the stop note of a ``shutdown_path`` that answered 404, naming the helper."""
    return f"{shutdown_path} answered 404: {shutdown_route_helper(command, cwd)}"


def shutdown_route_helper(command: Sequence[str], cwd: Path) -> str:
    """Return the advice for a shutdown route that answered 404, for the app's framework."""
    text = _text_of(command, cwd)
    for helper, markers in MARKERS:
        if any(marker in text for marker in markers):
            return f"is servercov's route missing? add it with {helper}"
    return (f"is servercov's route missing? add it with {FLASK} (Flask), {ASGI} (FastAPI, "
            f"Starlette), {DJANGO} (Django), {WSGI} (other WSGI apps)")
