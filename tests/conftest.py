"""pytest configuration: tests/views holds the sample API's nose2 view tests, not ours.

A suite started as a background job of a non-interactive shell (``cmd &``,
``nohup``) inherits SIGINT ignored, and so would every process the tests
start: the Ctrl-C tests would then test the shell, not servercov (a server
or nose2 that ignores SIGINT keeps running, as the user asked).  pytest's
own process takes SIGINT back, so the processes the tests start see it as
a fresh terminal gives it: a handler installed here is reset to the default
at exec, where an ignored signal would stay ignored.
"""

import signal

collect_ignore = ["views", "scenarios"]

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
