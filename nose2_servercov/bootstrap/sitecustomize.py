"""Start servercov's in-server hooks in every Python process of a measured server.

servercov puts this folder first on the server's PYTHONPATH, so Python runs
this file at start-up in the server and in every Python process it starts
(console scripts, forked or spawned workers).  It must never break the
server, so every failure is printed and swallowed, and it hands over to the
sitecustomize this file shadows, if the environment has one.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _servercov_bootstrap() -> None:
    try:
        import importlib.util

        path = os.path.join(os.path.dirname(_HERE), "inserver.py")
        spec = importlib.util.spec_from_file_location("_servercov_inserver", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        module.install()
    except Exception as exc:  # never take the server down
        try:
            sys.stderr.write(f"servercov: in-server hook failed in pid {os.getpid()}: {exc!r}\n")
        except Exception:
            pass


def _chain_next_sitecustomize() -> None:
    """Import the sitecustomize that this one shadows on sys.path, if any."""
    saved_path = sys.path[:]
    ours = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
        import sitecustomize  # noqa: F401
    except ImportError:
        sys.modules["sitecustomize"] = ours
    except Exception as exc:
        sys.stderr.write(f"servercov: the environment's sitecustomize failed: {exc!r}\n")
    finally:
        sys.path[:] = saved_path


_servercov_bootstrap()
_chain_next_sitecustomize()
