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


def _import_inserver():
    """Import ``nose2_servercov.inserver`` of the checkout that holds this file.

    The package's ``__init__`` imports only the standard library (its public
    names are lazy), so importing it costs the server nothing.  Where the
    server's Python finds no ``nose2_servercov``, or another copy of it (a
    ``uwsgi`` binary, a system Python), this very package is loaded from its
    folder, so the in-server code always matches the servercov that started it.
    """
    import importlib
    import importlib.util

    package = os.path.dirname(_HERE)
    init = os.path.join(package, "__init__.py")
    found = sys.modules.get("nose2_servercov")
    origin = getattr(found, "__file__", None) if found else None
    if found is None:
        spec = importlib.util.find_spec("nose2_servercov")
        origin = spec.origin if spec else None
    if origin is None or os.path.realpath(origin) != os.path.realpath(init):
        spec = importlib.util.spec_from_file_location(
            "nose2_servercov", init, submodule_search_locations=[package])
        module = importlib.util.module_from_spec(spec)
        sys.modules["nose2_servercov"] = module
        spec.loader.exec_module(module)
    return importlib.import_module("nose2_servercov.inserver")


def _servercov_bootstrap() -> None:
    try:
        _import_inserver().install()
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
