"""Check each ``X-Servercov-Context`` label before it reaches coverage's data and the reports.

A label is stored as sent and shown in the html report: ``</script>...``
there ran as script in some coverage versions, and a 10 kB label was stored
whole in every row.  So a label must be printable, at most
``protocol.LABEL_MAX_CHARS`` characters, with none of ``< > & "``; any other
is dropped: the request is still served, measured under
``protocol.DROPPED_LABEL`` (so its lines never land in another test's
context), and counted.  The count crosses into the runner through
``labels.<pid>`` in the run folder, rewritten whole on each drop; the run
says the total on one ``servercov:`` line at its end.

Runs inside the server on every labelled request: stdlib only, never raises.
"""

from __future__ import annotations

import json
import os
import threading

from nose2_servercov import protocol, safefiles

_FORBIDDEN = frozenset(protocol.LABEL_FORBIDDEN)
_lock = threading.Lock()
_dropped: dict[int, tuple[int, str]] = {}  # this process's pid -> (count, first example)


def is_acceptable(label: str) -> bool:
    """Return whether ``label`` may become a coverage context as it is."""
    return (len(label) <= protocol.LABEL_MAX_CHARS and label.isprintable()
            and _FORBIDDEN.isdisjoint(label))


def checked(label: str) -> str:
    """Return ``label`` if it is acceptable, else count it and return the dropped label."""
    if is_acceptable(label):
        return label
    try:
        _count(label)
    except Exception:  # never fail a request over the count
        pass
    return protocol.DROPPED_LABEL


def _count(label: str) -> None:
    """Add one to this process's count of dropped labels, in ``labels.<pid>`` too.

    The lock is waited for a second at most: a child forked while another
    thread held it would otherwise wait for good (the count is then short by one).
    """
    pid = os.getpid()  # a forked child counts its own, from zero
    if not _lock.acquire(timeout=1.0):
        return
    try:
        count, example = _dropped.get(pid, (0, label[:protocol.LABEL_EXAMPLE_CHARS]))
        _dropped.clear()
        _dropped[pid] = (count + 1, example)
        folder = os.environ.get(protocol.RUN_DIR_VARIABLE)
        if folder:
            record = dict(zip(protocol.LABEL_COUNT_KEYS, (count + 1, example), strict=True))
            safefiles.replace_atomically(os.path.join(folder, protocol.labels_file(pid)),
                                         json.dumps(record))
    finally:
        _lock.release()
