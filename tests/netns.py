"""Hosts for the remote tests: Linux network namespaces on this machine, a balancer, certs.

Each :class:`Host` is a network namespace (``ip netns add remote-...``) joined
to this machine by a veth pair, with an address of its own
(``10.231.K.2``; this side is ``10.231.K.1``), and a copy of the scenario's app
under a folder of its own, so that the paths its coverage data names differ
from the collector's checkout.  Everything is created and deleted by the test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support import SCENARIOS, python_env, servercov_command, wait_for_file

PREFIX = "remote"  # our branch's name: every namespace and link we make starts with it
TOKEN = "fleet-token-" + "x" * 20
_counter = itertools.count(1)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=check)


def require_netns() -> None:
    """Skip, saying why, where network namespaces cannot be made."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2): cannot make network namespaces")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    probe = f"{PREFIX}-probe-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    _ip("netns", "del", probe, check=False)


def _free_subnet() -> int:
    used = _ip("-4", "addr").stdout
    start = os.getpid() % 200
    for offset in range(254):
        k = (start + offset) % 250 + 1
        if f"10.231.{k}." not in used:
            return k
    raise RuntimeError("no free 10.231.K.0/24 subnet")


class Host:
    """One "host": a network namespace with an address and a copy of the app."""

    def __init__(self, root: Path, *, rcfile_servercov: str | None) -> None:
        """Make the host; with ``rcfile_servercov``, a copy of the basic scenario in its folder."""
        number = next(_counter)
        self.ns = f"{PREFIX}-{os.getpid()}-{number}"
        self.outside = f"rmt{os.getpid() % 100000}{number}a"
        self.inside = f"rmt{os.getpid() % 100000}{number}b"
        self.subnet = _free_subnet()
        self.address = f"10.231.{self.subnet}.2"
        self.folder = root / f"host{number}" / "srv" / "app"  # differs from the checkout
        if rcfile_servercov is None:
            self.folder.mkdir(parents=True)
        else:
            shutil.copytree(SCENARIOS / "basic", self.folder)
            (self.folder / ".apirc").write_text(
                "[run]\nbranch = True\nparallel = True\nsource = webapp\n\n[servercov]\n"
                f"host = {self.address}\nport = 8000\n" + rcfile_servercov)
        self.serve: subprocess.Popen[str] | None = None
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
            _ip("link", "set", self.inside, "netns", self.ns)
            _ip("addr", "add", f"10.231.{self.subnet}.1/24", "dev", self.outside)
            _ip("link", "set", self.outside, "up")
            self.ip("addr", "add", f"{self.address}/24", "dev", self.inside)
            self.ip("link", "set", self.inside, "up")
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    @property
    def app_url(self) -> str:
        return f"http://{self.address}:8000"

    def control_url(self, scheme: str = "https") -> str:
        return f"{scheme}://{self.address}:8765"

    def ip(self, *args: str) -> None:
        _ip("netns", "exec", self.ns, "ip", *args)

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]

    def start_serve(self, *control: str, token: str | None = TOKEN,
                    cwd: Path | None = None) -> subprocess.Popen[str]:
        """Start ``servercov serve --control ...`` inside the namespace (log: serve.log)."""
        env = python_env(**({"SERVERCOV_CONTROL_TOKEN": token} if token else {}))
        log = open(self.folder / "serve.log", "w")  # noqa: SIM115 (the child holds it)
        try:
            self.serve = subprocess.Popen(
                self.exec_argv(servercov_command("serve", *control)), cwd=cwd or self.folder,
                env=env,
                stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        finally:
            log.close()
        return self.serve

    def wait_serving(self, timeout: float = 60, *, rcfile_folder: Path | None = None) -> None:
        """Wait until the serve has written its state (the server is ready, the agent up)."""
        assert self.serve is not None
        state = (rcfile_folder or self.folder) / ".servercov" / "serve.json"
        try:
            wait_for_file(state, process=self.serve,
                          timeout=timeout)
        except AssertionError:
            raise AssertionError(self.log()) from None

    def log(self) -> str:
        return (self.folder / "serve.log").read_text()

    def pids(self) -> list[int]:
        """Return the processes running in the namespace."""
        out = _ip("netns", "pids", self.ns, check=False).stdout
        return [int(word) for word in out.split()]

    def kill_everything(self) -> None:
        """SIGKILL every process of the namespace, as a host that dies would lose them."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.serve is not None:
            self.serve.wait(10)

    def delete(self) -> list[int]:
        """Delete the namespace (its veth pair goes with it); return processes left in it."""
        left = self.pids()
        if left:
            self.kill_everything()
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", self.outside, check=False)
        return left


def make_cert(folder: Path, addresses: list[str]) -> tuple[Path, Path]:
    """Make a self-signed certificate (and key) for ``addresses``; return their paths."""
    cert, key = folder / "control-cert.pem", folder / "control-key.pem"
    names = ",".join(f"IP:{address}" for address in addresses)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=servercov-test", "-addext", f"subjectAltName={names}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class RoundRobin:
    """A TCP balancer on this side: each new connection goes to the next host in turn.

    It records the request line each host was sent (gunicorn's sync workers
    close every connection after one answer), so a test knows what ran where.
    """

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        self.targets = targets
        self.turn = itertools.count()
        self.lock = threading.Lock()
        self.sent: list[tuple[int, str, str]] = []  # (target index, method, path)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            number = next(self.turn) % len(self.targets)
            threading.Thread(target=self._pipe_both, args=(client, number), daemon=True).start()

    def _pipe_both(self, client: socket.socket, number: int) -> None:
        try:
            first = client.recv(65536)
            upstream = socket.create_connection(self.targets[number], timeout=10)
            upstream.sendall(first)
        except OSError:
            client.close()
            return
        method, path = ([*first.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""])[:2]
        with self.lock:
            self.sent.append((number, method, path))
        upstream.settimeout(None)
        back = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
        back.start()
        self._pipe(client, upstream)
        back.join(30)
        client.close()
        upstream.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def sent_to(self, numbers: set[int]) -> set[tuple[str, str]]:
        """Return the (method, path) of the requests sent to the hosts ``numbers``."""
        with self.lock:
            return {(method, path) for number, method, path in self.sent if number in numbers}

    def close(self) -> None:
        self.closed = True
        self.listener.close()
