"""Remote collection: agents beside servers on other hosts, and the collector here.

- :mod:`.agent`: the listener of ``servercov serve --control`` (in the serve process);
- :mod:`.client`: talking to one agent (status, data, errors, TLS);
- :mod:`.collector`: every agent at once, combined and reported (``servercov collect``);
- :mod:`.paths`: collected paths mapped onto this checkout, ``[paths]`` advice;
- :mod:`.run`: ``RemoteRun``, the run against ``remotes`` that ``open_run`` chooses.

Importing this package imports nothing else: a serve without ``--control``
never loads the agent's HTTP server.
"""
