"""Every measured process is accounted for: losses are named and fail the run.

Real servers, real signals: a process SIGKILLed by the test, a data file left
empty, a server Python without coverage, a `source` that matches nothing,
Django's runserver under its autoreloader stopped by signal alone (exact
against an in-process replay through ``django.test.Client``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    lines_differ,
    make_project,
    measured_lines,
    python_env,
    run_nose2,
    servercov_lines,
    stray_data_files,
)

pytestmark = pytest.mark.timeout(240)

DJANGO_TRUTH = """
import json, os, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]], branch=True)
cov.start()
os.environ["DJANGO_SETTINGS_MODULE"] = "djapp.settings"
import django
django.setup()
from django.test import Client
client = Client()
for method, path, body, status in json.loads(sys.argv[3]):
    if method == "GET":
        answer = client.get(path)
    else:
        answer = client.post(path, data=body if isinstance(body, str) else json.dumps(body),
                             content_type="application/json")
    assert answer.status_code == status, (path, answer.status_code)
cov.stop()
cov.save()
"""


def django_truth(project: Path) -> dict[str, set[int]]:
    """Replay the scenario's plan in-process through Django's test client under coverage."""
    requests = json.loads((project / "plan.json").read_text())
    subprocess.run([sys.executable, "-c", DJANGO_TRUTH, str(project / ".truth"), "djapp",
                    json.dumps(requests)], cwd=project, env=python_env(), check=True,
                   timeout=RUN_TIMEOUT)
    return measured_lines(project / ".truth", project / "djapp")


def test_django_runserver_with_its_autoreloader_stopped_by_signal_is_exact(tmp_path):
    project = make_project(tmp_path, "django_reloader")
    run = run_nose2(project)
    output = run.stderr
    log = (project / "server.log").read_text()
    assert run.returncode == 0, output + log
    assert "Watching for file changes with StatReloader" in log  # the reloader is on
    assert "server stopped by SIGTERM" in output
    assert "lost data" not in output
    measured = measured_lines(project / ".coverage", project / "djapp")
    truth = django_truth(project)
    assert truth["views.py"], "the ground truth recorded nothing"
    assert lines_differ(measured, truth) == [], output
    assert stray_data_files(project) == []
    assert_no_leftovers(project)


KILL_ONE = """
import json, os, signal, sys, time, urllib.request
url = os.environ["SERVERCOV_URL"]
def pid():
    with urllib.request.urlopen(url + "/pid/", timeout=10) as answer:
        return json.load(answer)["pid"]
deadline = time.monotonic() + 30
seen = {pid()}
while "{wait}" == "respawn" and len(seen) < 2 and time.monotonic() < deadline:
    seen.add(pid())  # both workers booted and answering
victim = pid()
urllib.request.urlopen(url + "/once/a/", timeout=10).read()
os.kill(victim, signal.SIGKILL)
open("victim", "w").write(str(victim))
while "{wait}" == "respawn" and time.monotonic() < deadline:
    try:
        if pid() not in seen:  # the worker the arbiter started in the victim's place
            break
    except OSError:
        time.sleep(0.05)
"""
GUNICORN_2 = """
    command = {python} -m gunicorn -w 2 -b {host}:{port} app:app
    ready_path = /health/
    shutdown_path = /servercov/shutdown/
    reports = term
    """


def run_command(project: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    from tests.support import run_servercov

    return run_servercov(project, "run", *args, "--", sys.executable, "-c", script)


def lost_lines(output: str) -> list[str]:
    return [line for line in servercov_lines(output) if "lost data:" in line]


def test_a_worker_sigkilled_by_the_test_is_named_and_run_exits_3(tmp_path):
    project = make_project(tmp_path, "servers", servercov=GUNICORN_2)
    run = run_command(project, KILL_ONE.replace("{wait}", "respawn"))
    victim = int((project / "victim").read_text())
    assert run.returncode == 3, run.stderr
    assert lost_lines(run.stderr) == [lost_lines(run.stderr)[0]]
    line = lost_lines(run.stderr)[0]
    assert line.startswith(f"servercov: lost data: pid {victim} (")
    assert "gunicorn" in line
    assert "ended while the tests ran without saving: killed by SIGKILL" in line
    # The others' data is still combined and reported.
    assert "server stopped by shutdown_path" in run.stderr
    assert "webapp/__init__.py" in run.stdout
    assert stray_data_files(project) == []
    assert_no_leftovers(project)


def test_lost_data_warn_names_the_loss_and_keeps_the_commands_status(tmp_path):
    project = make_project(tmp_path, "servers", servercov=GUNICORN_2 + "lost_data = warn\n")
    run = run_command(project, KILL_ONE.replace("{wait}", "respawn"))
    victim = int((project / "victim").read_text())
    assert run.returncode == 0, run.stderr
    warned = [line for line in servercov_lines(run.stderr) if "lost data:" in line]
    assert len(warned) == 1
    assert warned[0].startswith(f"servercov: warning: lost data: pid {victim} (")
    assert_no_leftovers(project)


def test_the_server_itself_sigkilled_exits_3_with_no_misleading_hint(tmp_path):
    project = make_project(tmp_path, "servers")
    run = run_command(project, KILL_ONE.replace("{wait}", "no"))
    victim = int((project / "victim").read_text())
    lines = servercov_lines(run.stderr)
    assert run.returncode == 3, run.stderr
    assert f"servercov: lost data: pid {victim} (" in "\n".join(lines)
    assert any(f"pid {victim}" in line and "killed by SIGKILL before it could save" in line
               for line in lines)
    assert any("the server exited with code -9 before the end" in line for line in lines)
    assert "check [run] source" not in run.stderr
    assert "Traceback" not in run.stderr
    assert_no_leftovers(project)


def test_under_nose2_a_sigkilled_server_fails_the_run(tmp_path):
    project = make_project(tmp_path, "servers")
    (project / "test_kill.py").write_text(
        "import unittest\n"
        f"SCRIPT = {KILL_ONE.replace('{wait}', 'no')!r}\n"
        "class Kill(unittest.TestCase):\n"
        "    def test_kill(self):\n"
        "        exec(SCRIPT, {})\n")
    run = run_nose2(project, "test_kill")
    victim = int((project / "victim").read_text())
    assert run.returncode == 1, run.stderr
    assert "Ran 1 test" in run.stderr and "OK" not in run.stderr.split("Ran 1 test")[1]
    assert any(line.startswith(f"servercov: lost data: pid {victim} (")
               for line in servercov_lines(run.stderr))
    assert_no_leftovers(project)


@pytest.mark.parametrize("content", [b"", b"this is not a coverage data file\n" * 64],
                         ids=["zero-byte", "garbage"])
def test_an_empty_or_unreadable_data_file_is_named_and_never_combined(tmp_path, content):
    project = make_project(tmp_path, "servers")
    script = (
        "import json, os, socket, urllib.request\n"
        "url = os.environ['SERVERCOV_URL']\n"
        "pid = json.load(urllib.request.urlopen(url + '/pid/', timeout=10))['pid']\n"
        "host = socket.gethostname().replace('.', '_')\n"
        f"open(f'.coverage.{{host}}.pid{{pid}}.Xbroken', 'wb').write({content!r})\n")
    run = run_command(project, script)
    assert run.returncode == 3, run.stderr
    lost = lost_lines(run.stderr)
    assert len(lost) == 1, run.stderr
    reason = "is empty (0 bytes)" if not content else "cannot be read by coverage"
    assert ".Xbroken " + reason in lost[0]
    assert "not combined" in lost[0]
    # The process's real data file is still combined: one file, not two.
    assert "combined 1 data file into" in run.stderr
    measured = measured_lines(project / ".coverage", project / "webapp")
    assert measured["__init__.py"]
    assert not list(project.glob(".coverage.*.Xbroken"))
    assert_no_leftovers(project)


def bare_python() -> str:
    """Return a Python interpreter without coverage installed.

    pyenv's bare 3.12 here; in CI's Python 3.14 chroot (no pyenv), the system's
    own python3 (Debian's, which has no coverage).
    """
    if shutil.which("pyenv") is None:
        python = Path(sys.base_prefix) / "bin" / "python{}.{}".format(*sys.version_info[:2])
        assert python.exists(), f"no pyenv and no {python}"
    else:
        found = subprocess.run(["pyenv", "prefix", "3.12.1"], capture_output=True, text=True)
        python = Path(found.stdout.strip()) / "bin" / "python"
        assert found.returncode == 0 and python.exists(), found.stderr
    check = subprocess.run([str(python), "-c", "import coverage"], capture_output=True)
    assert check.returncode != 0, f"{python} has coverage installed"
    return str(python)


def test_a_server_python_without_coverage_is_the_headline_without_v(tmp_path):
    python = bare_python()
    project = make_project(tmp_path, "crash", servercov=f"""
        command = {python} server.py {{port}}
        ready_path = /health/
        shutdown_path = /shutdown/
        reports = term
        """)
    run = run_command(project, "print('a test command that passes')")
    lines = servercov_lines(run.stderr)
    assert run.returncode == 3, run.stderr
    after_stop = lines[next(i for i, line in enumerate(lines) if "server stopped" in line) + 1]
    assert after_stop.startswith("servercov: lost data: pid ")
    assert after_stop.endswith(f": coverage is not installed for {python}: this process is "
                               "not measured")
    assert lines[-1] == ("servercov: error: no coverage data to report: every measured server "
                         "process lost its data (named above)")
    assert "check [run] source" not in run.stderr
    assert_no_leftovers(project)


def test_a_source_that_matches_nothing_says_so(tmp_path):
    project = make_project(tmp_path, "servers", run="source = nosuchpackage")
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("source = webapp\n", ""))
    run = run_command(project, "import os, urllib.request; urllib.request.urlopen("
                               "os.environ['SERVERCOV_URL'] + '/health/').read()")
    assert run.returncode == 1, run.stderr
    assert servercov_lines(run.stderr)[-1] == (
        "servercov: error: the 1 measured server process ran no code of [run] source = "
        "nosuchpackage: check [run] source")
    assert "lost data" not in run.stderr
    assert_no_leftovers(project)


def test_serve_with_a_worker_sigkilled_exits_3_after_servercov_stop(tmp_path):
    import os
    import signal
    import time
    import urllib.request

    from tests.support import end_process, run_servercov, running_serve, serve_state

    project = make_project(tmp_path, "servers", servercov=GUNICORN_2)
    with running_serve(project) as serve:
        state = serve_state(project, serve)
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while len(seen) < 2 and time.monotonic() < deadline:
            with urllib.request.urlopen(state["url"] + "/pid/", timeout=10) as answer:
                seen.add(json.load(answer)["pid"])
        victim = min(seen)
        os.kill(victim, signal.SIGKILL)
        stopped = run_servercov(project, "stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert end_process(serve) == 3
    output = (project / "serve.log").read_text()
    assert any(line.startswith(f"servercov: lost data: pid {victim} (")
               for line in servercov_lines(output)), output
    assert_no_leftovers(project)


WSGI_APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"""


def test_a_process_that_measured_nothing_and_is_killed_is_no_loss(tmp_path):
    # gunicorn's master (no --preload) never imports the app: it answers the save
    # request before the signal "empty", and KILL then takes nothing from it.
    project = tmp_path / "wsgi"
    project.mkdir()
    (project / "app.py").write_text(WSGI_APP)
    (project / ".apirc").write_text(
        "[run]\nparallel = True\ninclude = app.py\n\n"
        "[servercov]\ncommand = {python} -m gunicorn -w 2 -b {host}:{port} app:app\n"
        "stop_signal = KILL\nreports = term\n")
    run = run_command(project, "import os, urllib.request\n"
                               "urllib.request.urlopen(os.environ['SERVERCOV_URL']).read()\n")
    assert run.returncode == 0, run.stderr
    assert "server stopped by SIGKILL" in run.stderr
    assert "lost data" not in run.stderr
    measured = measured_lines(project / ".coverage", project)
    assert measured["app.py"] == {1, 2, 3}, run.stdout
    assert stray_data_files(project) == []
    assert_no_leftovers(project)
