"""``python -m nose2_servercov`` and the ``servercov`` console script."""

import sys


def run() -> None:
    """Run the ``servercov`` command; a Ctrl-C while it still imports is one line too."""
    try:
        from nose2_servercov.cli import main
    except KeyboardInterrupt:
        # Issue 8: the command's modules (coverage among them) take a tenth of a
        # second to import; a Ctrl-C then must not print a traceback.
        sys.stderr.write("servercov: interrupted\n")
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
