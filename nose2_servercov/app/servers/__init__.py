"""The servers the control route stops, one class each, and the registry that picks one.

To support a new server: a module here with a subclass of
:class:`~nose2_servercov.app.servers.base.Server` (how to recognise it, how to
stop it), its line in :data:`SERVERS`, and its test in
``tests/app/test_servers.py``.
"""

from __future__ import annotations

from nose2_servercov.app.servers.base import Environ, Server
from nose2_servercov.app.servers.django_runserver import DjangoRunserver
from nose2_servercov.app.servers.gunicorn import GunicornServer
from nose2_servercov.app.servers.hypercorn import HypercornServer
from nose2_servercov.app.servers.main_thread import MainThreadServer
from nose2_servercov.app.servers.uvicorn import UvicornServer
from nose2_servercov.app.servers.uwsgi import UwsgiServer
from nose2_servercov.app.servers.waitress import WaitressServer
from nose2_servercov.app.servers.werkzeug import WerkzeugServer

__all__ = ["SERVERS", "Environ", "Server", "find_server"]

# In the order they are asked; the first that recognises its process is the one.
# uWSGI and gunicorn come first: they run other servers' code (uWSGI's Python
# imports anything, gunicorn runs uvicorn's worker); hypercorn before uvicorn,
# which an app may import to run itself.  The main-thread fallback comes last.
SERVERS: tuple[type[Server], ...] = (
    UwsgiServer,
    GunicornServer,
    HypercornServer,
    UvicornServer,
    WaitressServer,
    WerkzeugServer,
    DjangoRunserver,
    MainThreadServer,
)


def find_server(environ: Environ) -> Server:
    """Return the server this process runs under, recognised from ``environ`` and the process."""
    for server in SERVERS:
        if server.recognises(environ):
            return server()
    return MainThreadServer()
