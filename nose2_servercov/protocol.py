"""Name everything that crosses a process boundary, once.

servercov is several processes that talk through the environment, HTTP
headers and files: the runner (nose2, pytest, ``servercov``), the keeper, every
measured server process (``nose2_servercov.inserver``), the app helpers inside
them (``nose2_servercov.app``), a ``servercov serve`` and its agent, and the
collector.  Each name and each message format below is spelled here and
nowhere else, so the two ends of a conversation cannot drift apart.

This module imports only the standard library: the code that runs inside the
server processes uses it too.

The conversations:

- **Registration and accounting** (run folder, ``SERVERCOV_RUN_DIR``): every
  measured process writes ``proc.<pid>`` (:data:`REGISTRATION_KEYS`) before it
  serves, ``exit.<pid>`` when it reaches an orderly exit, ``problem.<pid>``
  when its data cannot be trusted, ``labels.<pid>`` when it dropped test labels.
- **The save exchange** (control folder, ``SERVERCOV_CONTROL``): one request
  and answer used by snapshots, autosave and the save before a stop signal.
  The runner writes a generation number into ``request`` (higher than every
  earlier request and answer), then a byte into each process's FIFO
  ``wake.<pid>``; each process writes its dump and answers in ``ack.<pid>``
  with :func:`format_answer`.
- **The app's control route**: ``X-Servercov-Token`` carries
  ``SERVERCOV_TOKEN``; ``X-Servercov-Context`` carries a test's label.
- **serve**: ``.servercov/serve.json`` and ``snapshot.<pid>.request/answer``.
- **The agent**: bearer token, ``application/x-coverage-data`` answers.
"""

from __future__ import annotations

TYPE_CHECKING = False  # mypy takes it as true: no cost at run time, as in the servers
if TYPE_CHECKING:
    from collections.abc import Callable

# --- environment variables ----------------------------------------------------------------
URL_VARIABLE = "SERVERCOV_URL"  # the base URL, for tests and server processes
TOKEN_VARIABLE = "SERVERCOV_TOKEN"  # the per-run secret of the app's control route
CONTEXTS_VARIABLE = "SERVERCOV_CONTEXTS"  # "test" when contexts = test
VARIABLE_PREFIX = "SERVERCOV_"  # every variable of ours starts so
# The tests' view of each [servercov:NAME] section with a port (NAME upper-cased, - as _).
SECTION_URL_PREFIX = "SERVERCOV_URL_"
SECTION_PORT_PREFIX = "SERVERCOV_PORT_"
RUN_DIR_VARIABLE = "SERVERCOV_RUN_DIR"  # the run folder: registrations, exits, problems
CONTROL_VARIABLE = "SERVERCOV_CONTROL"  # the control folder: the save exchange
AUTOSAVE_VARIABLE = "SERVERCOV_AUTOSAVE"  # seconds between automatic dumps
CONTROL_TOKEN_VARIABLE = "SERVERCOV_CONTROL_TOKEN"  # the agent's bearer token
SHUTDOWN_PATH_SETTING = "SERVERCOV_SHUTDOWN_PATH"  # Django setting naming the route
COVERAGE_START_VARIABLE = "COVERAGE_PROCESS_START"  # coverage's: the rcfile
COVERAGE_CONFIG_VARIABLE = "COVERAGE_PROCESS_CONFIG"  # coverage's: serialized settings
COVERAGE_FILE_VARIABLE = "COVERAGE_FILE"
COVERAGE_CORE_VARIABLE = "COVERAGE_CORE"
# What an outer servercov may have set, and a server started by this one must not inherit.
RUN_VARIABLES = (RUN_DIR_VARIABLE, CONTROL_VARIABLE, AUTOSAVE_VARIABLE)

# --- HTTP ---------------------------------------------------------------------------------
TOKEN_HEADER = "X-Servercov-Token"
CONTEXT_HEADER = "X-Servercov-Context"
# A queued job's label (contexts = test): a Celery message header, an RQ job's meta key.
JOB_CONTEXT_KEY = "servercov_context"
DEFAULT_SHUTDOWN_PATH = "/servercov/shutdown/"
AGENT_DATA_TYPE = "application/x-coverage-data"
AGENT_PROBLEM_HEADER = "X-Servercov-Problem"
AGENT_WARNING_HEADER = "X-Servercov-Warning"


def wsgi_key(header: str) -> str:
    """Return the WSGI environ key of an HTTP header (``HTTP_X_SERVERCOV_TOKEN``)."""
    return "HTTP_" + header.upper().replace("-", "_")


def asgi_key(header: str) -> bytes:
    """Return the ASGI scope header name of an HTTP header (lower-case bytes)."""
    return header.lower().encode("latin-1")


# --- folders and files --------------------------------------------------------------------
CONTROL_FOLDER = ".servercov"  # beside [run] data_file: the control folder of serve
RUN_LOCK_FILE = "run.lock"  # in the control folder: one run at a time
RUN_STATE_FILE = "run.json"  # in the control folder: what the running run started
SERVE_STATE_FILE = "serve.json"  # in the rcfile's .servercov: a running serve
DUMP_INFIX = ".servercov-dump.pid"  # <data_file>.servercov-dump.pid<pid>: a dump
UNREADABLE_INFIX = ".servercov-unreadable.pid"  # a data file coverage cannot read, kept
REMOTE_INFIX = ".servercov-remote."  # a data file collected from an agent

REQUEST_FILE = "request"  # control folder: the last save request's generation
REQUEST_TEMPORARY = "request.tmp"
# Every file of the save exchange, as glob patterns (erased at the end of a run).
EXCHANGE_PATTERNS = (REQUEST_FILE, REQUEST_TEMPORARY, "ack.*", "wake.*", "dump.*.tmp")


def answer_file(pid: int) -> str:
    """Return the name of ``pid``'s answer to the save requests (control folder)."""
    return f"ack.{pid}"


def wake_file(pid: int) -> str:
    """Return the name of ``pid``'s wake FIFO (control folder)."""
    return f"wake.{pid}"


def dump_temporary(pid: int) -> str:
    """Return the name under which ``pid`` writes a dump before renaming it (control folder)."""
    return f"dump.{pid}.tmp"


def registration_file(pid: int) -> str:
    """Return the name of ``pid``'s registration (run folder)."""
    return f"proc.{pid}"


def exit_file(pid: int) -> str:
    """Return the name of ``pid``'s orderly-exit marker (run folder)."""
    return f"exit.{pid}"


def problem_file(pid: int) -> str:
    """Return the name of the file where ``pid`` names what makes its data untrustworthy."""
    return f"problem.{pid}"


def pid_of(name: str, file_name: Callable[[int], str]) -> int | None:
    """Return the pid whose ``file_name`` (a function above) is ``name``, else None.

    ``pid_of("ack.12", answer_file)`` is 12; ``pid_of("ack.12.tmp", answer_file)`` is None.
    """
    for word in name.split("."):
        if word.isascii() and word.isdigit() and file_name(int(word)) == name:
            return int(word)
    return None


def snapshot_request_file(pid: int) -> str:
    """Return the name of ``servercov snapshot``'s request to a serve (beside serve.json)."""
    return f"snapshot.{pid}.request"


def snapshot_answer_file(pid: int) -> str:
    """Return the name of a serve's answer to ``snapshot`` ``pid``."""
    return f"snapshot.{pid}.answer"


def stop_request_file(pid: int) -> str:
    """Return the name of ``servercov stop``'s request for the final total (beside serve.json)."""
    return f"stop.{pid}.request"


def stop_answer_file(pid: int) -> str:
    """Return the name of a serve's final total and report places for ``stop`` ``pid``."""
    return f"stop.{pid}.answer"


# --- labels (X-Servercov-Context) ---------------------------------------------------------
# A label longer than this, not printable, or holding one of these characters is dropped:
# the request is served under DROPPED_LABEL, and its process counts it in labels.<pid>.
LABEL_MAX_CHARS = 300
LABEL_FORBIDDEN = '<>&"'
DROPPED_LABEL = "servercov-dropped-label"
LABEL_EXAMPLE_CHARS = 60  # how much of a dropped label the count keeps, as an example
LABEL_COUNT_KEYS = ("dropped", "example")  # labels.<pid>, JSON


def labels_file(pid: int) -> str:
    """Return the name of the file where ``pid`` counts the labels it dropped (run folder)."""
    return f"labels.{pid}"


# --- state keys ---------------------------------------------------------------------------
REGISTRATION_KEYS = ("pid", "ppid", "argv", "start", "exe", "python")  # proc.<pid>, JSON
EXIT_MEASURED_KEY = "measured"  # exit.<pid>, JSON: how many files it had measured (-1: unknown)

# --- the save exchange --------------------------------------------------------------------
# A process registered for the exchange answers "0" before it serves anything.  Its
# answer to request N is "N dumped" (its dump holds all it ran) or "N empty" (it had
# measured nothing: there was nothing to write).  A bare "N" is read as "dumped".
DUMPED = "dumped"
EMPTY = "empty"
REGISTERED_ANSWER = "0"


def is_generation(text: str) -> bool:
    """Return whether ``text`` is a well-formed request: a decimal generation number."""
    return text.isascii() and text.isdigit()


def format_answer(generation: str | int, *, dumped: bool) -> str:
    """Return the answer a process writes after it obeyed request ``generation``."""
    return f"{generation} {DUMPED if dumped else EMPTY}"


def parse_answer(text: str) -> tuple[int, bool] | None:
    """Return ``(generation, dumped)`` of an answer, or None if servercov did not write it."""
    words = text.split()
    if not words or not is_generation(words[0]) or len(words) > 2:
        return None
    if len(words) == 2 and words[1] not in (DUMPED, EMPTY):
        return None
    return int(words[0]), len(words) == 1 or words[1] == DUMPED
