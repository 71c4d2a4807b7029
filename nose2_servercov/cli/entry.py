"""The entry of the ``servercov`` command: its parser, its exit statuses, its errors.

:func:`main` parses the command line and hands it to the module of the
command (``cli/run.py``, ``serve.py``, ``snapshot.py`` for ``snapshot`` and
``stop``, ``collect.py``), imported only then: ``snapshot`` and ``stop``
import no coverage and start fast.  It is the one place where an exception
becomes a ``servercov: error:`` line and an exit status; a command prints
its own error lines only where it goes on after them (``run`` reports what
its server measured even when the test command could not start).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nose2_servercov import __version__
from nose2_servercov.engine.command import CommandNotFound
from nose2_servercov.engine.config import (
    ServerConfig,
    find_rcfile,
    key_reference,
    load_config,
    section_reference,
)
from nose2_servercov.errors import LostDataError, ServercovError, describe_error
from nose2_servercov.protocol import CONTROL_TOKEN_VARIABLE, URL_VARIABLE

if TYPE_CHECKING:
    from nose2_servercov.engine.run import MeasuredRun

# Exit statuses (SPEC.md, "Entry points"); `run` exits with its command's own otherwise.
ERROR = 1
FAIL_UNDER = 2
LOST_DATA = 3  # a measured server process lost its data (lost_data = fail)
INTERRUPTED = 128 + signal.SIGINT
NOT_FOUND = 127  # as a shell says of a command it cannot find

EXAMPLES = {
    None: """examples:
  servercov run -- python -m unittest discover -s tests
  servercov serve            # in one shell; then, from another one:
  servercov snapshot         # reports of what the server has run so far
  servercov stop             # final reports; serve exits 0""",
    "run": f"""example:
  servercov run -- python -m unittest discover -s tests
  servercov run --rcfile ci/.apirc -- pytest -q tests/api
  servercov run -- ./smoke-tests.sh     # {URL_VARIABLE} holds the server's URL""",
    "serve": f"""example:
  servercov serve            # runs until Ctrl-C or `servercov stop`, then writes the reports
  servercov serve -v --rcfile staging.apirc
  {CONTROL_TOKEN_VARIABLE}=... servercov serve --control 0.0.0.0:8765 \\
      --control-cert cert.pem --control-key key.pem   # for servercov collect elsewhere""",
    "snapshot": """example:
  servercov snapshot         # from another shell in the folder of the running serve""",
    "stop": """example:
  servercov stop             # the serve writes its final reports and exits 0""",
    "collect": f"""example:
  servercov collect https://api-1:8765 https://api-2:8765   # {CONTROL_TOKEN_VARIABLE} set
  servercov collect --stop   # the agents of [servercov] remotes: final data, servers stop""",
    "keys": """example:
  servercov keys | less""",
}
ERROR_LINE = 'one "servercov: error:" line says why'
FINAL_REPORT_STATUSES = f"""  0      done
  1      {ERROR_LINE}
  2      the final report: fail_under ([report]) was not met
  3      the final report: a measured process lost its data (lost_data = fail)"""
# Each command's exit statuses (SPEC.md, "Entry points"), shown in its --help.
STATUSES: dict[str | None, str] = {
    None: """exit status: `servercov run` exits with its command's own status, or 1 (one
"servercov: error:" line), 2 (fail_under), 3 (lost data), 127 (no such command),
128+N (stopped by signal N); serve, snapshot, stop and collect with 0 or 1, and
2 or 3 for a final report.  COMMAND --help tells each command's.""",
    "run": f"""exit status: the command's own, or
  1      the server could not start or servercov failed
         ({ERROR_LINE})
  2      the command passed but fail_under ([report]) was not met
  3      the command passed but a measured process lost its data (lost_data = fail)
  127    the command cannot be found
  128+N  servercov was stopped by signal N before the command ran""",
    "serve": f"""exit status:
{FINAL_REPORT_STATUSES}
  128+N  stopped by signal N before the server was ready""",
    "snapshot": f"""exit status:
  0      the reports were written
  1      {ERROR_LINE}""",
    "stop": f"""exit status:
{FINAL_REPORT_STATUSES}""",
    "collect": f"""exit status:
{FINAL_REPORT_STATUSES}""",
    "keys": """exit status:
  0      the keys were printed""",
}
KEYS_POINTER = "the rcfile's [servercov] keys, their defaults and meanings: servercov keys"


def epilog(command: str | None) -> str:
    """Return the end of a --help: examples, exit statuses, where the keys are listed."""
    pointer = "" if command == "keys" else f"\n\n{KEYS_POINTER}"
    return f"{EXAMPLES[command]}\n\n{STATUSES[command]}{pointer}"


def say(message: str) -> None:
    """Print one ``servercov:`` line on the error stream."""
    sys.stderr.write(f"servercov: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``servercov`` command; return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else ERROR
    try:
        return _execute(args)
    except CommandNotFound as exc:
        say(f"error: {exc}")
        return NOT_FOUND
    except ServercovError as exc:
        say(f"error: {exc}")
        return ERROR
    # The last net, for what no check foresaw: still one line, never a traceback.
    except (OSError, ValueError) as exc:
        say(f"error: {describe_error(exc)}")
        return ERROR
    except KeyboardInterrupt:  # before the signal handlers are in place, or after them
        say("interrupted")
        return INTERRUPTED


def _execute(args: argparse.Namespace) -> int:
    """Run the command ``args`` name; its module is imported now, and imports this one."""
    if args.subcommand == "run":
        from nose2_servercov.cli import run

        return run.run(args)
    if args.subcommand == "serve":
        from nose2_servercov.cli import serve

        return serve.serve(args)
    if args.subcommand == "collect":
        from nose2_servercov.cli import collect

        return collect.collect(args)
    if args.subcommand == "keys":
        sys.stdout.write(key_reference() + "\n" + section_reference())
        return 0
    from nose2_servercov.cli import snapshot

    return snapshot.snapshot(args) if args.subcommand == "snapshot" else snapshot.stop(args)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``servercov`` and its commands, with their help and examples."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="servercov", formatter_class=formatter, epilog=epilog(None),
        description="Measure the coverage of a live server while any test command, "
                    "or a person, uses it.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, *, verbose: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  formatter_class=formatter, epilog=epilog(name))
        if name == "keys":
            return sub
        sub.add_argument("--rcfile", metavar="FILE",
                         help="rcfile with the servercov section (default: the first of "
                              ".apirc, .coveragerc, setup.cfg, tox.ini, pyproject.toml "
                              "that has one, in the current folder, then in each parent up "
                              "to the one holding .git)")
        if verbose:
            sub.add_argument("-v", "--verbose", action="store_true",
                             help="also show the server's own output")
        return sub

    run = add("run", f"Start the server measured, run COMMAND with {URL_VARIABLE} set, stop "
                     "the server and report; exit with COMMAND's status.")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...",
                     help="the test command and its arguments")
    serve = add("serve", "Run the server measured in the foreground until Ctrl-C, SIGTERM or "
                         "`servercov stop`, then write the final reports.")
    _add_control_options(serve)
    add("snapshot", "Write the reports from what the running serve's processes have "
                    "executed so far, without stopping any.", verbose=False)
    add("stop", "Stop the running serve; it writes the final reports.", verbose=False)
    collect = add("collect", "Fetch the coverage data of remote agents (`servercov serve "
                             "--control`), combine it with the rcfile's [paths] and report.",
                  verbose=False)
    _add_collect_options(collect)
    add("keys", "Print every key of the rcfile's [servercov] section: its name, its default, "
                "what it means.")
    return parser


def _add_control_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "remote control", "a listener in the serve process (never in the app) that answers "
                          "GET /status, POST /snapshot and POST /stop for `servercov collect`")
    group.add_argument("--control", metavar="HOST:PORT",
                       help="where the control listener listens, e.g. 0.0.0.0:8765")
    group.add_argument("--control-token-file", metavar="FILE",
                       help="file holding the token every request must carry (default: "
                            f"${CONTROL_TOKEN_VARIABLE}); needed unless HOST is loopback")
    group.add_argument("--control-cert", metavar="FILE", help="PEM certificate: serve HTTPS")
    group.add_argument("--control-key", metavar="FILE", help="PEM private key of --control-cert")
    group.add_argument("--control-insecure", action="store_true",
                       help="allow plain HTTP with a token on a non-loopback address (a private "
                            "network only: the token crosses it in clear)")


def _add_collect_options(collect: argparse.ArgumentParser) -> None:
    collect.add_argument("--stop", action="store_true",
                         help="stop each agent's server and take its final data (default: "
                              "a snapshot; the servers run on)")
    collect.add_argument("--control-token-file", metavar="FILE",
                         help=f"file holding the agents' token (default: "
                              f"${CONTROL_TOKEN_VARIABLE})")
    collect.add_argument("--control-ca", metavar="FILE",
                         help="PEM file of the CA that signed the agents' certificates "
                              "(default: the system's, or $SSL_CERT_FILE)")
    collect.add_argument("--control-insecure", action="store_true",
                         help="send the token over plain HTTP to agents on other hosts (a "
                              "private network only: the token crosses it in clear)")
    collect.add_argument("urls", nargs="*", metavar="URL",
                         help="agent URLs, e.g. https://api-1:8765 (default: [servercov] "
                              "remotes)")


def config_of(args: argparse.Namespace) -> ServerConfig:
    """Return the config of the rcfile that ``--rcfile`` names, or of the first found."""
    return load_config(find_rcfile(args.rcfile))


def measured_run(config: ServerConfig, *, verbose: bool) -> MeasuredRun:
    """Return the measured run of ``config`` (local or against remotes), not started."""
    from nose2_servercov.engine.run import open_run  # coverage: not for snapshot, stop

    return open_run(config, verbose=verbose)


def report_end(session: MeasuredRun) -> tuple[str | None, int]:
    """Stop the server, report; return (what went wrong, the status of the report).

    The status: LOST_DATA when a measured process lost its data, FAIL_UNDER
    when fail_under was not met, else 0.  A loss that ends the report early
    is named here, with the problem before it.
    """
    problem = None
    outcome = session.stop()
    if outcome is not None and outcome.exited_early:
        problem = (f"the server exited with code {outcome.exit_code} before the end; what it "
                   "executed until then is kept")
    problem = "; ".join(([problem] if problem else []) + session.stop_problems()) or None
    try:
        result = session.finish()
    except LostDataError as exc:
        if problem:
            say(f"error: {problem}")
        say(f"error: {exc}")
        return None, LOST_DATA
    if result.lost_data:
        return problem, LOST_DATA
    return problem, FAIL_UNDER if result.failed_under else 0
