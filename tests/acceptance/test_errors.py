"""Every error is one line (issue 8): bad values, unwritable places, Ctrl-C, exit statuses.

Real runs of ``servercov run`` and ``nose2 --with-servercov`` in scenario
folders.  A bad value gets exactly one ``servercov: error:`` line naming the
file, the key and what was expected, exit status 1, no traceback and no
server started; a report that cannot be written keeps the combined data;
Ctrl-C (once or twice) stops the server, combines and reports exactly once;
``servercov run`` exits with its command's real status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings

import nose2_servercov
from tests.engine.config.test_config_fuzz import rcfiles
from tests.support import (
    assert_exact,
    assert_no_leftovers,
    make_project,
    measured_lines,
    plan,
    python_env,
    run_nose2,
    run_servercov,
    servercov_command,
    servercov_lines,
    start_nose2,
    wait_for_file,
)

GOOD = """
    command = {python} serve.py {port}
    ready_path = /health/
    shutdown_path = /servercov/shutdown/
    reports = json
    """
PASS = (sys.executable, "-c", "pass")

# (what is wrong, the [servercov] section or None, extra rcfile text, what the line says)
BAD_VALUES = [
    ("url-placeholder", GOOD + "url = http://{x}:{port}\n", "",
     "[servercov] url: expected placeholders among {host}, {port}"),
    ("url-format-spec", GOOD + "url = http://{host}:{port:d}\n", "",
     "[servercov] url: expected placeholders among {host}, {port} without a conversion or "
     "format spec (not {port:d})"),
    ("command-conversion", GOOD.replace("{port}\n", "{port!r}\n", 1), "",
     "[servercov] command: expected placeholders among {python}, {host}, {port}, {url} "
     "without a conversion or format spec (not {port!r})"),
    ("command-placeholder", GOOD.replace("{port}\n", "{x}\n", 1), "",
     "[servercov] command: expected placeholders among"),
    ("huge-timeout", GOOD + "shutdown_timeout = 1e20\n", "",
     "[servercov] shutdown_timeout: expected a number of seconds greater than 0 and at most "
     "3600, got '1e20'"),
    ("nul-in-env", GOOD + "env = A = b\0c\n", "",
     "[servercov] env: expected one 'NAME = value' a line, without NUL bytes"),
    ("nul-in-command", GOOD.replace("serve.py", "serve\0.py", 1), "",
     "[servercov] command: expected text without NUL bytes"),
    ("log-is-a-folder", GOOD + "log = .\n", "",
     "[servercov] log: expected a file for the server's output, got the folder"),
    ("ipv6-host-unbracketed-url", GOOD + "host = ::1\nurl = http://{host}:{port}/api\n", "",
     "[servercov] url: expected an http:// or https:// URL with a host and a valid port "
     "once {host} is '::1' (an IPv6 host goes in brackets"),
    ("unresolvable-host", GOOD + "host = no-such-host.invalid\n", "",
     "[servercov] host: cannot resolve 'no-such-host.invalid'"),
    ("html-folder-not-writable", GOOD.replace("reports = json", "reports = html"),
     "[html]\ndirectory = blocker/html\n",
     "[html] directory: the html report cannot be written to"),
    ("json-output-is-a-folder", GOOD, "[json]\noutput = afolder\n",
     "[json] output: the json report cannot be written to"),
    ("coverage-plugin-missing", GOOD, "[run]\nplugins = no_such_plugin_module\n",
     "coverage cannot load a [run] plugins module: No module named 'no_such_plugin_module'"),
    ("nul-in-data-file", GOOD, "[run]\ndata_file = a\0b\n",
     "coverage's data_file setting holds a NUL byte"),
    ("data-file-folder-missing", GOOD, "[run]\ndata_file = /proc/no/such/.coverage\n",
     "[run] data_file: the folder /proc/no/such does not exist"),
]


def write_rcfile(project: Path, servercov: str, extra: str) -> Path:
    rcfile = project / ".apirc"
    head = rcfile.read_text().split("[servercov]")[0]
    if extra.startswith("[run]\n"):  # more keys for the scenario's [run] section
        head, extra = head.replace("[run]\n", extra, 1), ""
    rcfile.write_bytes((head + extra + "\n[servercov]\n" + textwrap.dedent(servercov))
                       .encode("utf-8"))
    (project / "blocker").write_text("a file where a folder is expected")
    (project / "afolder").mkdir(exist_ok=True)
    return rcfile


def assert_one_error_line(project: Path, stderr: str, expected: str) -> str:
    lines = servercov_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("servercov: error: "), stderr
    assert expected in lines[0], stderr
    assert "Traceback" not in stderr
    assert "server started" not in stderr
    assert_no_leftovers(project)
    return lines[0]


@pytest.mark.parametrize("front_end", ["run", "nose2"])
@pytest.mark.parametrize(("fault", "servercov", "extra", "expected"), BAD_VALUES,
                         ids=[case[0] for case in BAD_VALUES])
def test_a_bad_value_is_one_line_and_starts_nothing(tmp_path, front_end, fault, servercov,
                                                    extra, expected):
    project = make_project(tmp_path)
    write_rcfile(project, servercov, extra)
    if front_end == "run":
        run = run_servercov(project, "run", "--", *PASS)
    else:
        run = run_nose2(project)
        assert "Ran 0 tests" in run.stderr
    assert run.returncode == 1, run.stderr
    assert_one_error_line(project, run.stderr, expected)
    assert not (project / "coverage.json").exists()


@pytest.mark.parametrize("front_end", ["run", "nose2"])
def test_an_rcfile_that_is_not_utf8_is_one_line(tmp_path, front_end):
    project = make_project(tmp_path)
    (project / ".apirc").write_bytes(b"[servercov]\ncommand = {python} serve.py \xff{port}\n")
    run = (run_servercov(project, "run", "--", *PASS) if front_end == "run"
           else run_nose2(project))
    assert run.returncode == 1
    assert_one_error_line(project, run.stderr,
                          f"{project / '.apirc'}: cannot be read: expected UTF-8 text, "
                          "found byte b'\\xff' at offset")


def test_an_ipv6_host_gets_brackets_in_the_default_url(tmp_path):
    project = tmp_path / "v6"
    project.mkdir()
    (project / "v6.py").write_text(textwrap.dedent("""\
        import http.server, socket, sys

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(http.server.HTTPServer):
            address_family = socket.AF_INET6

        Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
        """))
    (project / ".apirc").write_text(textwrap.dedent("""\
        [run]
        parallel = True
        source = .

        [servercov]
        command = {python} v6.py {host} {port}
        host = ::1
        ready_path = /
        stop_signal = INT
        reports = json
        """))
    fetch = "import os, urllib.request; urllib.request.urlopen(os.environ['SERVERCOV_URL'])"
    run = run_servercov(project, "run", "--", sys.executable, "-c", fetch)
    assert run.returncode == 0, run.stderr
    assert ", http://[::1]:" in run.stderr
    assert "Traceback" not in run.stderr
    assert measured_lines(project / ".coverage", project)["v6.py"]
    assert_no_leftovers(project)


def test_a_report_that_cannot_be_written_keeps_the_combined_data(tmp_path):
    project = make_project(tmp_path)
    write_rcfile(project, GOOD.replace("reports = json", "reports = html, json"),
                 "[html]\ndirectory = late/html\n")
    # The folder is writable when the run starts; the command puts a file in its way.
    block = "open('late', 'w').write('in the way')"
    run = run_servercov(project, "run", "--", sys.executable, "-c", block)
    assert run.returncode == 1, run.stderr
    errors = [line for line in servercov_lines(run.stderr) if "error" in line]
    assert errors == [
        f"servercov: error: the html report could not be written to "
        f"{project / 'late' / 'html' / 'index.html'} (Not a directory: "
        f"{project / 'late' / 'html'}); the combined data is kept in {project / '.coverage'}"]
    assert "Traceback" not in run.stderr
    assert "server stopped by shutdown_path" in run.stderr
    assert measured_lines(project / ".coverage", project / "webapp")["__init__.py"]
    assert json.loads((project / "coverage.json").read_text())["files"]
    assert_no_leftovers(project)


# --- Ctrl-C ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("sig", "second"), [
    (signal.SIGINT, None), (signal.SIGINT, 0.05), (signal.SIGINT, 0.2), (signal.SIGTERM, 0.1)],
    ids=["ctrl-c-once", "ctrl-c-twice-0.05s", "ctrl-c-twice-0.2s", "sigterm-twice-0.1s"])
def test_ctrl_c_of_nose2_stops_combines_and_reports_exactly_once(tmp_path, sig, second):
    project = make_project(tmp_path, servercov=GOOD)
    runner = start_nose2(project, SCENARIO="wait")
    try:
        wait_for_file(project / "waiting", process=runner)  # the server is up, a test waits
        runner.send_signal(sig)
        if second is not None:
            time.sleep(second)
            runner.send_signal(sig)
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    lines = servercov_lines(output)
    for once in ("servercov: server stopped by shutdown_path", "servercov: combined 1 data",
                 "servercov: json report: "):
        assert sum(line.startswith(once) for line in lines) == 1, output
    assert lines[-1] == (f"servercov: error: interrupted by {sig.name}: the server was stopped "
                         "and what it ran is reported")
    assert "Ran 2 tests" in output
    assert_exact(project, [*plan(project), ["GET", "/once/b/", None, 200]])
    assert json.loads((project / "coverage.json").read_text())["files"]
    assert_no_leftovers(project)


def test_ctrl_c_of_nose2_while_the_server_starts_is_one_line(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} never_ready.py {port}
        ready_path = /health/
        """)
    (project / "never_ready.py").write_text(
        "import pathlib, time\npathlib.Path('starting').touch()\ntime.sleep(60)\n")
    runner = start_nose2(project)
    try:
        wait_for_file(project / "starting", process=runner)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, output
    assert "Traceback" not in output
    assert servercov_lines(output) == [
        "servercov: error: interrupted while the server was starting: it was stopped, and no "
        "test ran"]
    assert "Ran 0 tests" in output
    assert_no_leftovers(project)


def test_ctrl_c_while_servercov_still_imports_is_one_line(tmp_path):
    project = make_project(tmp_path, servercov=GOOD)
    hook = tmp_path / "slow-import"
    hook.mkdir()
    # A test-only sitecustomize: it makes servercov's own imports slow and says when
    # they are under way, so that the SIGINT lands inside them, not by luck.
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""\
        import os, pathlib, sys, time
        marker = os.environ.pop("SLOW_IMPORT_MARKER", None)

        class SlowImport:
            def find_spec(self, name, path=None, target=None):
                if marker and name == "nose2_servercov.engine.run":
                    pathlib.Path(marker).touch()
                    time.sleep(30)
                return None

        sys.meta_path.insert(0, SlowImport())
        """))
    marker = project / "importing"
    for argv in (servercov_command("run", "--", *PASS),
                 [str(Path(sys.executable).parent / "servercov"), "run", "--", *PASS]):
        if not Path(argv[0]).exists():
            continue  # not installed with its console script
        marker.unlink(missing_ok=True)
        runner = subprocess.Popen(argv, cwd=project, stderr=subprocess.PIPE, text=True,
                                  env=python_env(PYTHONPATH=str(hook),
                                                 SLOW_IMPORT_MARKER=str(marker)))
        try:
            wait_for_file(marker, process=runner)
            runner.send_signal(signal.SIGINT)
            _, stderr = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                runner.kill()
        assert (runner.returncode, stderr) == (130, "servercov: interrupted\n")
    assert_no_leftovers(project)


# --- servercov run exits with the command's real status ------------------------------------

def test_run_exits_with_the_commands_real_status_after_sigint_30_times(tmp_path):
    project = make_project(tmp_path, servercov="""
        command = {python} -S listen.py {port}
        reports = term
        """)
    (project / "listen.py").write_text(
        "import socket, sys, time\nsock = socket.socket()\n"
        "sock.bind(('127.0.0.1', int(sys.argv[1])))\nsock.listen()\ntime.sleep(60)\n")
    # A trivial server (-S: no coverage, quick to start) keeps each try short; what is
    # checked is the exit status.  The command exits 42 on the first SIGINT and ignores
    # the next (servercov passes on a signal the command may have had already), so a
    # lost status (0) or a made-up one (130) shows.
    command = [sys.executable, "-S", "-c",
               "import pathlib, signal, sys, time\n"
               "def stop(*args):\n"
               "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
               "    sys.exit(42)\n"
               "signal.signal(signal.SIGINT, stop)\n"
               "pathlib.Path(sys.argv[1]).touch()\n"
               "time.sleep(60)\n"]
    statuses = []
    for attempt in range(30):
        marker = project / f"running.{attempt}"
        runner = subprocess.Popen(servercov_command("run", "--", *command, str(marker)),
                                  cwd=project, env=python_env(), stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        try:
            wait_for_file(marker, process=runner)
            # Half the time as a terminal does it (servercov and the command at once),
            # half the time to servercov alone, which passes it on.
            if attempt % 2:
                os.killpg(runner.pid, signal.SIGINT)
            else:
                runner.send_signal(signal.SIGINT)
            _, stderr = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                os.killpg(runner.pid, signal.SIGKILL)
        assert "Traceback" not in stderr
        statuses.append((runner.returncode, stderr) if runner.returncode != 42 else 42)
    assert statuses == [42] * 30
    assert_no_leftovers(project)


# --- generated rcfiles through the real command ----------------------------------------------

@settings(max_examples=20, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(content=rcfiles)
def test_generated_rcfiles_through_run_never_print_a_traceback(tmp_path_factory, content):
    project = make_project(tmp_path_factory.mktemp("fuzz"))
    # Bounded: whatever was generated, a server that never gets ready costs 3 s.
    (project / ".apirc").write_bytes(
        content + b"\n[servercov]\nstartup_timeout = 3\nshutdown_timeout = 2\n")
    run = run_servercov(project, "run", "--", "true", timeout=60)
    event(f"exit status {run.returncode}")
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    assert run.returncode in (0, 1, 2, 3), run.stderr
    if run.returncode == 1:
        assert any(line.startswith("servercov: error: ")
                   for line in servercov_lines(run.stderr)), run.stderr
    assert_no_leftovers(project)


def test_ctrl_c_twice_of_run_reports_once_with_the_commands_status(tmp_path):
    project = make_project(tmp_path, servercov=GOOD)
    # The command sends one request, then waits; on SIGINT it exits 42 and ignores the next.
    command = [sys.executable, "-c",
               "import os, pathlib, signal, sys, time, urllib.request\n"
               "def stop(*args):\n"
               "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
               "    sys.exit(42)\n"
               "signal.signal(signal.SIGINT, stop)\n"
               "urllib.request.urlopen(os.environ['SERVERCOV_URL'] + '/once/b/').read()\n"
               "pathlib.Path('waiting').touch()\n"
               "time.sleep(60)\n"]
    runner = subprocess.Popen(servercov_command("run", "--", *command), cwd=project,
                              env=python_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for_file(project / "waiting", process=runner)
        runner.send_signal(signal.SIGINT)
        time.sleep(0.1)
        runner.send_signal(signal.SIGINT)
        _, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 42, stderr
    assert "Traceback" not in stderr
    lines = servercov_lines(stderr)
    for once in ("servercov: server stopped by shutdown_path", "servercov: combined 1 data",
                 "servercov: json report: "):
        assert sum(line.startswith(once) for line in lines) == 1, stderr
    assert_exact(project, [["GET", "/health/", None, 200], ["GET", "/once/b/", None, 200]])
    assert_no_leftovers(project)


def test_version(tmp_path):
    run = run_servercov(tmp_path, "--version")
    expected = f"servercov {nose2_servercov.__version__}\n"
    assert (run.returncode, run.stdout, run.stderr) == (0, expected, "")
