"""The ``servercov`` command: ``run``, ``serve``, ``snapshot``, ``stop``, ``collect``.

One module per command, parsing and printing only, over the engine
(:mod:`nose2_servercov.engine`): ``run.py``, ``serve.py``, ``snapshot.py``
(``snapshot`` and ``stop``), ``collect.py``; ``entry.py`` holds the parser,
the exit statuses and :func:`main`, the one place where an error becomes a
``servercov: error:`` line and a status.  ``python -m nose2_servercov`` and
the ``servercov`` console script (``nose2_servercov.__main__:run``) call
:func:`main`.
"""

from __future__ import annotations

from nose2_servercov.cli.entry import main

__all__ = ["main"]
