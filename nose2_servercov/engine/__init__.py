"""The engine: one measured run, from the rcfile to the report, for every front end.

It knows nothing of nose2, pytest or the command line; the front ends
(``plugin``, ``pytest_plugin``, ``cli``) are thin layers over it.  Data flows
one way: rcfile -> config -> run -> server process -> (tests) -> data.

- :mod:`.run`: :func:`~.run.open_run` chooses the run once, a ``LocalRun``
  here or a ``RemoteRun`` against agents; every front end calls only that.
- :mod:`.testrun`: the run inside a test runner's process (nose2, pytest).
- :mod:`.serve`, :mod:`.servestate`: ``servercov serve`` until stopped, and how
  ``snapshot`` and ``stop`` find it.
- :mod:`.command`, :mod:`.stopsignals`, :mod:`.interrupts`: the test command
  of ``servercov run`` and the stop signals of every front end.
- :mod:`.config`: the rcfile's ``[servercov]`` section and every decision made
  before a start.
- :mod:`.server`: the server's processes: start, keeper, run lock, probes, stop.
- :mod:`.data`: the coverage data: the exchange with the server processes,
  snapshots, accounting, combine and report.
"""
