"""What every benchmark here shares: temp projects, servers, wrk, alternating rounds, medians.

Every figure a benchmark prints is a ratio of things measured in the same
run, in alternating rounds (A B C A B C ...) or loaded at the same moment
(``contexts_sysmon.py``), so that machine noise hits every setup alike; the
figure quoted is the median of the rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "tests" / "scenarios" / "servers"
RESULTS = REPO / "bench" / "results.json"

# A user's Python keeps compiled bytecode: a shell that turns that off would
# charge every server start of every setup with recompiling its modules.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Started as a background job of a shell (`cmd &`, nohup), this process and every
# server it starts would ignore SIGINT, which the benchmarks stop servers with.  A
# handler here is reset to the default at exec; an ignored signal would stay ignored.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

sys.path.insert(0, str(REPO))

from nose2_servercov import procfs  # noqa: E402
from nose2_servercov.engine.server.network import http_status, pick_free_port  # noqa: E402


def python_env(**extra: str) -> dict[str, str]:
    """Return the environment of a child: ours without coverage's or servercov's variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COVERAGE_", "SERVERCOV_")) and k != "PYTHONPATH"}
    env.update(extra)
    return env


def scenario_project(folder: Path, servercov: str = "", *, run: str = "") -> Path:
    """Copy the servers scenario (Flask app ``webapp``) into ``folder``; set its sections."""
    project = folder / "project"
    shutil.copytree(SCENARIO, project, dirs_exist_ok=True)
    text = (project / ".apirc").read_text().split("[servercov]")[0]
    if run:
        text = text.replace("[run]\n", f"[run]\n{run.strip()}\n", 1)
    (project / ".apirc").write_text(text + "[servercov]\n" + servercov)
    return project


def wait_answering(url: str, *, timeout: float = 60, process: subprocess.Popen[bytes] | None = None,
                   interval: float = 0.005) -> None:
    """Poll ``url`` until it answers below 500 (the hand recipes' readiness loop)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http_status("GET", url, timeout=1.0) < 500:
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(interval)


class Server:
    """A server command in its own process group, started and ended by the benchmark."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str],
                 ready_url: str, stop_signal: int = signal.SIGTERM) -> None:
        self.argv, self.cwd, self.env = list(argv), cwd, env
        self.ready_url, self.stop_signal = ready_url, stop_signal
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_answering(self.ready_url, process=self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        with _suppress_lookup():
            os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        deadline = time.monotonic() + 10
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _group_alive(self.process.pid):
            with _suppress_lookup():
                os.killpg(self.process.pid, signal.SIGKILL)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, (ProcessLookupError, PermissionError))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def need_wrk() -> str:
    """Return wrk's path, or stop with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("bench: wrk is needed (Debian: apt-get update && apt-get install -y wrk)")
    return path


def wrk(url: str, *, seconds: float, connections: int = 8, threads: int = 1,
        headers: Sequence[str] = ()) -> dict[str, float]:
    """Run wrk against ``url``; return requests/s, requests done, p50/p99 latency (ms), errors."""
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds only
    argv = [need_wrk(), f"-t{threads}", f"-c{connections}", duration, "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    return {"rps": rate, "requests": int(done[1]) if done else 0,
            "p50_ms": _latency(out, "50%"), "p99_ms": _latency(out, "99%"),
            "errors": errors + (int(non_2xx[1]) if non_2xx else 0), "output": out}


def process_tree(root: int) -> list[int]:
    """Return ``root`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for process in (procfs.all_processes() or {}).values():
        children.setdefault(process.ppid, []).append(process.pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_ns(root: int) -> int:
    """Return the CPU time (ns) that ``root`` and its descendants have used so far.

    Read per thread from ``/proc/<pid>/task/<tid>/schedstat``, in nanoseconds
    (``/proc/<pid>/stat`` counts 10 ms ticks, too coarse for a 2 s round).
    Threads that ended are not counted: the servers measured keep theirs.
    """
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError), \
                        open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
    return total


def _latency(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not match:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
    return float(match[1]) * scale


def alternate(rounds: int, setups: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each setup once per round, in turn; return every setup's figures."""
    figures: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(rounds):
        for name, measure in setups.items():
            figures[name].append(measure())
    return figures


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def record(section: str, payload: dict[str, object]) -> None:
    """Keep one benchmark's figures in bench/results.json, with the machine they came from."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    payload = {"python": sys.version.split()[0], "when": time.strftime("%Y-%m-%d %H:%M"),
               **payload}
    results[section] = payload
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def free_url(path: str = "/") -> tuple[int, str]:
    port = pick_free_port("127.0.0.1")
    return port, f"http://127.0.0.1:{port}{path}"
