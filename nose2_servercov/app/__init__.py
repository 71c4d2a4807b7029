"""The one core of the app helpers (``flask``, ``wsgi``, ``asgi``, ``django``).

The helpers are thin layers over these modules, which run inside the user's
app, in every server process; like :mod:`nose2_servercov.protocol` they import
only the standard library (and :mod:`nose2_servercov.procfs`):

- :mod:`.gate`: is a request for the control route, does it carry the run's
  token (compared in constant time), and the route's answers.
- :mod:`.contexts`: ``contexts = test``, each request measured under the label
  of the test that sent it (:class:`~.contexts.ContextSwitch`).
- :mod:`.stopping`: stop the server once the route's answer has been sent.
- :mod:`.servers`: one class per server (Werkzeug, gunicorn, uWSGI, waitress,
  uvicorn, hypercorn, Django's runserver, and a fallback) that recognises its
  server from inside its process and stops it the server's own orderly way.
  A new server is one module there, one line in its registry, and its test.
"""
