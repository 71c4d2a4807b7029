"""The one core of the app helpers (``flask``, ``wsgi``, ``asgi``, ``django``).

The helpers are thin layers over these modules, which run inside the user's
app, in every server process; like :mod:`nose2_servercov.protocol` they import
only the standard library, besides :mod:`~nose2_servercov.protocol` and
:mod:`~nose2_servercov.procfs` and :mod:`~nose2_servercov.safefiles` (and, only
where needed, the in-server code to report a request that held the test context
too long, and greenlet under gevent or eventlet):

- :mod:`.gate`: is a request for the control route, does it carry the run's
  token (compared in constant time), and the route's answers.
- :mod:`.contexts`: ``contexts = test``, each request measured under the label
  of the test that sent it (:class:`~.contexts.ContextSwitch`).
- :mod:`.labels`: a test's label is checked (printable, short, no markup) before
  it becomes a context; a dropped one is counted for the run's last line.
- :mod:`.stopping`: stop the server once the route's answer has been sent.
- :mod:`.servers`: one class per server (Werkzeug, gunicorn, uWSGI, waitress,
  uvicorn, hypercorn, Django's runserver, and a fallback) that recognises its
  server from inside its process and stops it the server's own orderly way.
  A new server is one module there, one line in its registry, and its test.
"""
