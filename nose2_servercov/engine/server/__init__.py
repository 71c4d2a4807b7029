"""The server's processes: started in their own group, guarded, locked, probed, stopped.

- ``process``: :class:`ServerProcess`, one command from start to reaped (the stop
  escalates shutdown path -> stop signal -> KILL and always reaps the group);
- ``keeper``: a tiny process that ends the server if the runner dies, even by SIGKILL;
- ``runlock``: one run at a time per data folder, and what an earlier run left;
- ``network``: free ports, port and URL probes, who owns a listening socket;
- ``wrongport``: a server that listens on another port than its ``{port}``, told in seconds;
- ``route_advice``: which helper provides a shutdown route that answered 404.
"""
