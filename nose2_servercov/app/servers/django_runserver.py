"""Django's development server, ``manage.py runserver``, with or without its autoreloader."""

from __future__ import annotations

import sys

from nose2_servercov.app.servers.base import Environ, software
from nose2_servercov.app.servers.main_thread import MainThreadServer


class DjangoRunserver(MainThreadServer):
    """``runserver``: wsgiref's server under Django, in the main thread or beside the reloader.

    With ``--noreload`` the main thread serves; a SystemExit there ends
    ``serve_forever``.  With the autoreloader, the serving child's main thread
    watches files while "django-main-thread" (a daemon thread) serves: the
    child exits, and the reloader's parent exits with the child's status (it
    restarts the child only on status 3).
    """

    name = "django-runserver"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return ("django.core.servers.basehttp" in sys.modules
                # wsgiref's "WSGIServer/0.2"; 3.15 drops the "/0.2": "WSGIServer".
                and software(environ).partition("/")[0].strip() == "WSGIServer")
