"""Remote agents and the collector, between real hosts: network namespaces on this machine.

Every host is a namespace of its own with an address of its own (see
``tests/netns.py``), running ``servercov serve --control`` over gunicorn -w 4
from a folder that is not the collector's checkout, so that ``[paths]`` does
real work.  The load comes from this side, over the veth pairs.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import coverage
import pytest

from nose2_servercov.engine.server import network
from tests.netns import TOKEN, Host, RoundRobin, make_cert, require_netns
from tests.support import (
    LOAD_KINDS,
    REPO,
    Load,
    assert_no_leftovers,
    end_process,
    ground_truth,
    lines_differ,
    make_project,
    measured_lines,
    plan,
    run_nose2,
    run_servercov,
    running_serve,
    serve_state,
    servercov_lines,
)

pytestmark = pytest.mark.timeout(240)

HOST_SERVERCOV = """
command = {python} -m gunicorn -w 4 -b {host}:{port} --graceful-timeout 10 webapp:create_app()
ready_path = /health/
reports = json
"""
PATHS = """
[paths]
webapp =
    webapp/
    */srv/app/webapp/
"""


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """Make hosts on demand; delete them after the test, failing if a process was left."""
    require_netns()
    made: list[Host] = []

    def make(servercov: str | None = HOST_SERVERCOV) -> Host:
        host = Host(tmp_path, rcfile_servercov=servercov)
        made.append(host)
        return host

    yield make
    left = {host.ns: host.delete() for host in made}
    assert not any(left.values()), f"processes left in the namespaces: {left}"


def collector(tmp_path: Path, *, paths: str = PATHS, servercov: str = "reports = json\n",
              name: str = "collector") -> Path:
    """Return the collector's checkout of the same app, with its rcfile."""
    project = make_project(tmp_path / name)
    (project / ".apirc").write_text(
        "[run]\nbranch = True\nparallel = True\nsource = webapp\n" + paths
        + "\n[servercov]\n" + textwrap.dedent(servercov))
    return project


def collect(project: Path, *args: str, cert: Path | None = None,
            token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {"SSL_CERT_FILE": str(cert)} if cert else {}
    if token:
        env["SERVERCOV_CONTROL_TOKEN"] = token
    return run_servercov(project, "collect", *args, **env)


def control_request(method: str, url: str, *, token: str | None,
                    cert: Path | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send one request; return status, headers and body."""
    host, port = url.split("://")[1].rsplit(":", 1)
    conn: http.client.HTTPConnection
    if url.startswith("https"):
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection(host, int(port.split("/")[0]), timeout=30,
                                           context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port.split("/")[0]), timeout=30)
    path = "/" + url.split("://")[1].split("/", 1)[1] if url.count("/") > 2 else "/"
    conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, dict(answer.getheaders()), body


def kinds_of(requests: set[tuple[str, str]]) -> list[list[object]]:
    """Return the LOAD_KINDS entries of (method, path) pairs, in LOAD_KINDS order."""
    return [kind for kind in LOAD_KINDS if (kind[0], kind[1]) in requests]


def contains(measured: dict[str, set[int]], expected: dict[str, set[int]]) -> list[str]:
    return [f"{name}: missing {sorted(lines - measured.get(name, set()))}"
            for name, lines in expected.items() if lines - measured.get(name, set())]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.02)


def tls_control(host: Host, cert: Path, key: Path) -> list[str]:
    return ["--control", f"{host.address}:8765", "--control-cert", str(cert),
            "--control-key", str(key)]


def test_one_host_snapshots_then_stop_exact_and_secured(tmp_path, hosts):
    host = hosts()
    cert, key = make_cert(tmp_path, [host.address])
    token_file = tmp_path / "control-token"
    token_file.write_text(TOKEN + "\n")
    serve = host.start_serve(*tls_control(host, cert, key), "--control-token-file",
                             str(token_file), token=None)
    host.wait_serving()
    project = collector(tmp_path)
    agent = host.control_url()

    # Security of the live agent: a token is needed, the right one, over verified TLS.
    assert control_request("GET", agent + "/status", token=None, cert=cert)[0] == 401
    assert control_request("GET", agent + "/status", token="wrong", cert=cert)[0] == 403
    assert control_request("POST", agent + "/stop", token="wrong", cert=cert)[0] == 403
    # Ready means one worker answers; gunicorn may still be forking the others, so the
    # live count of /status is read until the arbiter and its 4 workers are all there.
    deadline = time.monotonic() + 30
    while True:
        status, headers, body = control_request("GET", agent + "/status", token=TOKEN,
                                                cert=cert)
        assert status == 200 and headers["Content-Type"] == "application/json"
        answer = json.loads(body)
        if answer["processes"] == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer["url"] == host.app_url and answer["processes"] == 5  # arbiter + 4 workers
    assert answer["version"] and answer["started"]
    # The app never sees the control token.
    server_pids = [pid for pid in host.pids()
                   if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(server_pids) == 5
    for pid in server_pids:
        assert b"SERVERCOV_CONTROL_TOKEN" not in Path(f"/proc/{pid}/environ").read_bytes()
    # The app's own port never exposes the control routes, token or not.
    for method, route in (("GET", "/status"), ("POST", "/snapshot"), ("POST", "/stop")):
        assert control_request(method, host.app_url + route, token=TOKEN)[0] == 404
    # HTTP to the HTTPS agent (--control-insecure: else refused before it is asked).
    plain = collect(project, "--control-insecure", host.control_url("http"), cert=cert)
    assert plain.returncode == 1
    assert f"agent {host.control_url('http')}: cannot fetch its data: " in plain.stderr
    untrusted = collect(project, agent)  # no CA for the agent's certificate
    assert untrusted.returncode == 1
    assert f"agent {agent}: cannot fetch its data: TLS: CERTIFICATE_VERIFY_FAILED" in \
        untrusted.stderr

    load = Load(host.app_url, LOAD_KINDS, threads=6, seconds=4.0, unlock_every=0.3).start()
    snapshots = []
    for kinds in (3, 6):
        wait_until(lambda k=kinds: len(load.first_done) >= k, f"{kinds} kinds answered")
        asked = time.monotonic()
        taken = collect(project, agent, cert=cert)
        assert taken.returncode == 0, taken.stderr
        snapshots.append((asked, measured_lines(project / ".coverage", project / "webapp")))

    # A checkout whose [paths] names the wrong place: the one line that says which entry
    # maps the host's files.
    wrong_paths = "\n[paths]\nwebapp =\n    webapp/\n    /nowhere/srv/app/webapp/\n"
    lost = collector(tmp_path, paths=wrong_paths, name="wrongpaths")
    unmapped = collect(lost, agent, cert=cert)
    assert unmapped.returncode == 1
    remote_file = host.folder / "webapp" / "__init__.py"
    entry = f"webapp = webapp/, {host.folder / 'webapp'}/"
    assert servercov_lines(unmapped.stderr)[-1] == (  # the agent that sent it is named
        f"servercov: error: 1 of 1 agents failed: {agent}: collected data names {remote_file}, "
        f"which matches no local file; add this [paths] entry to {lost / '.apirc'}: {entry}")
    rcfile = lost / ".apirc"
    rcfile.write_text(rcfile.read_text().replace(wrong_paths, f"\n[paths]\n{entry}\n"))
    mapped = collect(lost, agent, cert=cert)
    assert mapped.returncode == 0, mapped.stderr
    assert set(measured_lines(lost / ".coverage", lost / "webapp")) == {"__init__.py"}

    load.wait()
    stopped = collect(project, "--stop", "--control-token-file", str(token_file), agent,
                      cert=cert, token=None)
    assert stopped.returncode == 0, stopped.stderr
    assert end_process(serve) == 0, host.log()
    assert host.pids() == [], "processes left in the host after /stop"
    assert load.failures == [], load.failures[:5]
    final = measured_lines(project / ".coverage", project / "webapp")
    truth = ground_truth(project, load.kinds_sent())
    assert len(load.kinds_sent()) == len(LOAD_KINDS)
    assert lines_differ(final, truth) == [], host.log()
    for number, (asked, snapshot) in enumerate(snapshots):
        assert contains(final, snapshot) == [], f"snapshot {number} has lines the final lacks"
        assert contains(snapshot, ground_truth(project, load.kinds_done_before(asked))) == []
    assert "servercov: control: stop requested by" in host.log()
    assert "servercov: control: a connection from 10.231." in host.log()  # the plain HTTP one
    assert "Traceback" not in host.log()
    assert (host.folder / "coverage.json").exists()  # the host wrote its own reports too
    assert (project / "coverage.json").exists()
    assert sorted(p.name for p in project.glob(".coverage.*")) == []


def test_fleet_of_three_union_exact_then_one_host_killed(tmp_path, hosts):
    fleet = [hosts() for _ in range(3)]
    cert, key = make_cert(tmp_path, [host.address for host in fleet])
    serves = [host.start_serve(*tls_control(host, cert, key)) for host in fleet]
    for host in fleet:
        host.wait_serving()
    project = collector(tmp_path, servercov="reports = json\nremotes = " + ", ".join(
        host.control_url() for host in fleet) + "\n")
    # /never/ is asked of the third host alone: a marker of its data.
    kinds = [kind for kind in LOAD_KINDS if kind[1] != "/never/"]
    assert control_request("GET", fleet[2].app_url + "/never/", token=None)[0] == 200
    balancer = RoundRobin([(host.address, 8000) for host in fleet])
    try:
        load = Load(balancer.url, kinds, threads=6, seconds=4.0, unlock_every=0.3).start()
        wait_until(lambda: len(load.first_done) >= 4, "4 kinds answered")
        started = time.monotonic()
        under_load = collect(project, cert=cert)
        seconds_under_load = time.monotonic() - started
        assert under_load.returncode == 0, under_load.stderr
        load.wait()
        assert load.failures == [], load.failures[:5]
        union = collect(project, cert=cert)
        assert union.returncode == 0, union.stderr
        everything = [*kinds_of(balancer.sent_to({0, 1, 2})), LOAD_KINDS[7]]
        assert len(everything) == len(LOAD_KINDS)
        measured = measured_lines(project / ".coverage", project / "webapp")
        replay = ground_truth(project, everything)
        assert lines_differ(measured, replay) == []
        figures = {"hosts": 3, "processes": sum(
                       json.loads(control_request("GET", host.control_url() + "/status",
                                                  token=TOKEN, cert=cert)[2])["processes"]
                       for host in fleet),
                   "requests": load.count,
                   "lines_collected": sum(len(lines) for lines in measured.values()),
                   "lines_replay": sum(len(lines) for lines in replay.values()),
                   "seconds_collect_under_load": round(seconds_under_load, 2),
                   "seconds_fetch_under_load": float(re.search(
                       r"collected 3 of 3 agents in ([\d.]+) s", under_load.stderr)[1])}

        # One host dies mid-run: named, exit 1, the other two's final data kept exactly.
        second = Load(balancer.url, kinds, threads=4, seconds=2.0, unlock_every=0.01).start()
        wait_until(lambda: second.count > 100, "100 requests of the second load")
        fleet[2].kill_everything()
        second.wait()
        stopped = collect(project, "--stop", cert=cert)
    finally:
        balancer.close()
    assert stopped.returncode == 1
    dead = fleet[2].control_url()
    assert f"servercov: agent {dead}: cannot fetch its data: " in stopped.stderr
    assert servercov_lines(stopped.stderr)[-1].startswith(
        f"servercov: error: 1 of 3 agents failed: {dead}: cannot fetch its data")
    assert "collected 2 of 3 agents" in stopped.stderr
    for serve, host in zip(serves[:2], fleet[:2], strict=True):
        assert end_process(serve) == 0, host.log()
    kept = measured_lines(project / ".coverage", project / "webapp")
    truth = ground_truth(project, kinds_of(balancer.sent_to({0, 1})))
    assert lines_differ(kept, truth) == []
    assert (project / "coverage.json").exists()
    print("fleet figures:", json.dumps(figures), file=sys.stderr)
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    if os.environ.get("SERVERCOV_FIGURES"):
        Path(os.environ["SERVERCOV_FIGURES"]).write_text(json.dumps(figures))


def test_nose2_and_servercov_run_against_two_remote_hosts(tmp_path, hosts):
    pair = [hosts() for _ in range(2)]
    serves = [host.start_serve("--control", f"{host.address}:8765", "--control-insecure")
              for host in pair]
    for host in pair:
        host.wait_serving()
    balancer = RoundRobin([(host.address, 8000) for host in pair])
    remotes = ", ".join(host.control_url("http") for host in pair)
    try:
        project = collector(tmp_path, servercov=f"""
            remotes = {remotes}
            url = {balancer.url}
            ready_path = /health/
            remote_stop = false
            reports = json
            """)
        # nose2 first, taking snapshots only: the agents run on.
        nosed = run_nose2(project, SERVERCOV_CONTROL_TOKEN=TOKEN)
        assert nosed.returncode == 0, nosed.stderr
        assert "servercov: remote servers ready:" in nosed.stderr
        measured = measured_lines(project / ".coverage", project / "webapp")
        assert lines_differ(measured, ground_truth(project, plan(project))) == []
        assert all(serve.poll() is None for serve in serves)
        # Then servercov run, stopping them: the final data of both, exact.
        rcfile = project / ".apirc"
        rcfile.write_text(rcfile.read_text().replace("remote_stop = false", "remote_stop = true"))
        ran = run_servercov(project, "run", "--", sys.executable, "-m", "unittest",
                            SERVERCOV_CONTROL_TOKEN=TOKEN)
        assert ran.returncode == 0, ran.stderr
    finally:
        balancer.close()
    assert {number for number, _, _ in balancer.sent} == {0, 1}, "the load reached one host"
    assert "collected 2 of 2 agents" in ran.stderr
    for serve, host in zip(serves, pair, strict=True):
        assert end_process(serve) == 0, host.log()
        assert host.pids() == []
    measured = measured_lines(project / ".coverage", project / "webapp")
    assert lines_differ(measured, ground_truth(project, plan(project))) == []
    assert sorted(p.name for p in project.glob(".coverage.*")) == []


@pytest.mark.parametrize(("args", "env", "refusal"), [
    (["--control", "0.0.0.0:{port}"], {},
     "servercov: error: --control 0.0.0.0:{port} is reachable from other hosts: it needs a "
     "token (SERVERCOV_CONTROL_TOKEN or --control-token-file); refused"),
    (["--control", "0.0.0.0:{port}"], {"SERVERCOV_CONTROL_TOKEN": TOKEN},
     "servercov: error: --control 0.0.0.0:{port} is reachable from other hosts and plain HTTP "
     "would send the token in clear: give --control-cert and --control-key, or "
     "--control-insecure on a private network; refused"),
    (["--control", "127.0.0.1:{port}", "--control-cert", "cert.pem"], {},
     "servercov: error: --control-cert and --control-key go together (the certificate and its "
     "private key, PEM files)"),
    (["--control", "127.0.0.1:{port}", "--control-token-file", "missing"], {},
     "servercov: error: missing: cannot read the control token: No such file or directory"),
    (["--control-insecure"], {}, "servercov: error: --control-insecure needs --control HOST:PORT"),
])
def test_control_refusals_come_before_anything_starts(tmp_path, args, env, refusal):
    project = make_project(tmp_path)
    port = "18765"
    refused = run_servercov(project, "serve", *[a.format(port=port) for a in args], **env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [refusal.format(port=port)]
    assert not list(project.glob(".coverage*")) and not (project / ".servercov").exists()
    assert_no_leftovers(project)


def test_loopback_agent_without_a_token_and_collect_without_agents(tmp_path):
    project = make_project(tmp_path)
    port = str(network.pick_free_port("127.0.0.1"))
    with running_serve(project, "--control", f"127.0.0.1:{port}") as serve:
        app = serve_state(project, serve)["url"]
        agent = f"http://127.0.0.1:{port}"
        assert control_request("GET", agent + "/status", token=None)[0] == 200
        assert control_request("GET", agent + "/nothing", token=None)[0] == 404
        assert control_request("GET", agent + "/stop", token=None)[0] == 405
        beside = run_servercov(project, "collect", agent)  # the serve's own folder
        assert beside.returncode == 1
        assert beside.stderr.splitlines() == [
            f"servercov: error: a servercov serve (pid {serve.pid}) runs with "
            f"{project / '.apirc'} and writes its data beside it; collect with an rcfile in "
            "another folder"]
        checkout = collector(tmp_path, paths="")
        nothing = run_servercov(checkout, "collect")
        assert nothing.returncode == 1
        assert nothing.stderr.splitlines() == [
            f"servercov: error: {checkout / '.apirc'}: no agents to collect from: name their "
            "URLs, or set [servercov] remotes"]
        # The app's URL instead of the agent's: named, nothing else collected.
        wrong = run_servercov(checkout, "collect", app)
        assert wrong.returncode == 1
        assert servercov_lines(wrong.stderr) == [
            f"servercov: agent {app}: answered 404 (<!doctype html>)",
            f"servercov: error: 1 of 1 agents failed: {app}: answered 404 (<!doctype html>)"]
        stopped = run_servercov(checkout, "collect", "--stop", agent)
        assert stopped.returncode == 1  # the agent's project is not this checkout
        assert "matches no local file" in servercov_lines(stopped.stderr)[-1]
        assert end_process(serve) == 0
    log = (project / "serve.log").read_text()
    assert (f"servercov: control: listening on {agent} without a token: any local user can "
            "snapshot and stop this server (set SERVERCOV_CONTROL_TOKEN to require one)") in log
    assert (project / "htmlcov" / "index.html").exists()  # serve's own final reports
    assert_no_leftovers(project)


def dockerfile_cmd() -> list[str]:
    """Return the CMD of examples/remote/Dockerfile (its JSON form)."""
    text = (REPO / "examples" / "remote" / "Dockerfile").read_text().replace("\\\n", "")
    line = next(line for line in text.splitlines() if line.startswith("CMD "))
    return json.loads(line[4:])


def test_the_container_example_measured_between_two_hosts(tmp_path, hosts):
    """examples/remote as a container would run it, the host a namespace instead of Docker.

    The agent runs the Dockerfile's CMD in a copy of the files the image
    holds; the collector is a checkout elsewhere with the example's .apirc,
    whose [paths] names /app: here the host's folder stands in for /app.
    """
    host = hosts(None)
    image = host.folder  # what the Dockerfile copies into /app
    for folder in ("sample_api", "examples/remote"):
        shutil.copytree(REPO / folder, image / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".coverage*", "cover"))
    command = dockerfile_cmd()
    assert command[0] == "servercov"
    serve = host.start_serve(*command[2:], cwd=image)
    host.wait_serving(rcfile_folder=image / "examples" / "remote")
    checkout = tmp_path / "checkout"
    for folder in ("sample_api", "tests/views", "examples/remote"):
        shutil.copytree(REPO / folder, checkout / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".coverage*", "cover"))
    rcfile = checkout / "examples" / "remote" / ".apirc"
    text = rcfile.read_text()
    for published, reached in (("/app/", f"{image}/"),
                               ("http://127.0.0.1:8765", host.control_url("http")),
                               ("http://127.0.0.1:8000", host.app_url)):
        assert published in text
        text = text.replace(published, reached)
    rcfile.write_text(text)
    ran = run_servercov(checkout, "run", "--rcfile", "examples/remote/.apirc", "--",
                        sys.executable, "-m", "unittest", "discover", "-s", "tests/views",
                        SERVERCOV_CONTROL_TOKEN=TOKEN)
    assert ran.returncode == 0, ran.stderr + host.log()
    assert end_process(serve) == 0, host.log()
    assert host.pids() == []
    assert (checkout / "examples" / "remote" / "cover" / "index.html").exists()
    cov = coverage.Coverage(data_file=str(checkout / "examples" / "remote" / ".coverage"))
    cov.load()
    views = checkout / "sample_api" / "views.py"
    assert {str(views), str(checkout / "sample_api" / "app.py")} <= set(
        cov.get_data().measured_files())
    _, statements, _, missing, _ = cov.analysis2(str(views))
    export = views.read_text().splitlines().index("def export_user(uid: str) -> Response:") + 1
    assert missing == [n for n in statements if n > export]  # as examples/gunicorn measures


def test_a_run_against_an_agent_that_never_answers_runs_no_test(tmp_path):
    port = network.pick_free_port("127.0.0.1")  # nothing listens there
    project = collector(tmp_path, servercov=f"""
        remotes = http://127.0.0.1:{port}
        url = http://127.0.0.1:{port}
        startup_timeout = 1
        """)
    ran = run_servercov(project, "run", "--", sys.executable, "-c", "open('ran', 'w')")
    assert ran.returncode == 1
    assert servercov_lines(ran.stderr) == [
        f"servercov: error: agents did not answer /status within 1 s (startup_timeout): "
        f"http://127.0.0.1:{port}: Connection refused"]
    assert not (project / "ran").exists()
    # serve needs a command even where remotes are set: it is what runs the server.
    refused = run_servercov(project, "serve")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"servercov: error: {project / '.apirc'}: [servercov] command: serve runs the server, "
        "so it needs how to start it (remotes are collected with servercov collect)"]
