"""``servercov snapshot`` and ``stop`` start fast: the command's module imports no coverage.

The serve takes the snapshot (it has coverage imported already); a command
that imported coverage would spend about 0.1 s of CPU on it, taken from the
server it measures under load (BENCHMARKS.md).
"""

from __future__ import annotations

import subprocess
import sys


def test_the_command_module_imports_no_coverage():
    probe = ("import sys, nose2_servercov.cli; print(sorted(m for m in sys.modules "
             "if m == 'coverage' or m.startswith('coverage.')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
