"""The keeper, run as ``python -I -S keeper.py``, finds and loads the one reader of /proc.

It cannot import the package there, so it loads ``procfs.py`` by a path
computed from its own; a wrong path would silently cost it the start-time
checks that keep it from ever signalling a reused pid.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nose2_servercov.engine.server import keeper

PROBE = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("keeper_probe", sys.argv[1])
keeper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(keeper)
keeper.__name__ = "__main__"  # as when run as a script: the package is not importable
procfs = keeper._load_procfs()
assert "nose2_servercov" not in sys.modules
print(procfs.__file__, keeper.start_time(os.getpid()) == procfs.stat(os.getpid()).start)
"""


def test_the_keeper_loads_procfs_by_its_path_in_an_isolated_python():
    assert Path(keeper.PROCFS_PATH).is_file()
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, keeper.__file__],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    loaded, same_start = done.stdout.split()
    assert Path(loaded).resolve() == Path(keeper.PROCFS_PATH).resolve()
    assert same_start == "True"
