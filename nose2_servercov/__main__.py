"""``python -m nose2_servercov``: the ``servercov`` command."""

import sys

from nose2_servercov.cli import main

sys.exit(main())
