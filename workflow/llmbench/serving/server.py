"""An engine's OpenAI-compatible server as a step of a benchmark job: started on 127.0.0.1 on a free port,
waited for, its output captured, and always stopped (its whole process group).

The server runs in its own session (process group), so a signal to the job does not reach it by accident and
``stop`` can end it together with every process it started (vLLM's engine core and workers). The job stops it
when it ends, fails, or gets SIGTERM/SIGINT (:func:`stop_on_signals` turns those into an exception, so the
``with`` block's exit runs). A job killed with SIGKILL cannot stop anything: the server keeps running, and its
pidfile (pid, process group, command line) lets the next run of the same job find it and stop it
(:func:`stop_stale`) before starting a new one. A recorded pid that now belongs to another program (the pid was
reused) is never signalled: the command line must match.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from llmbench.core.server import ServerCommand, ServerNotReady, http_ok

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _kill_group(pgid: int, grace_s: float, reap: Callable[[], object] = lambda: None) -> None:
    """SIGTERM to the group, then SIGKILL to what is left after ``grace_s``. ``reap``: collects our own child
    (the group leader) so its zombie does not count as alive."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap()
            if not _group_alive(pgid):
                return
            time.sleep(0.1)


def stop_stale(pidfile: Path, log: Callable[[str], None] = print) -> bool:
    """Stop the server a killed earlier run of this job left behind (its pidfile says which); True if one
    was stopped. The pidfile is removed either way."""
    if not pidfile.exists():
        return False
    rec = json.loads(pidfile.read_text())
    pidfile.unlink()
    if _cmdline(rec["pid"]) != rec["argv"]:
        log(f"stale server pidfile {pidfile}: pid {rec['pid']} is gone (or runs something else now); nothing to stop")
        return False
    log(f"stopping the server a killed earlier run left behind: pid {rec['pid']} (started {rec['started']}, "
        f"{' '.join(rec['argv'][:4])} ...)")
    _kill_group(rec["pgid"], grace_s=10.0)
    return True


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Server:
    """``with Server(cmd, port, log_path, pidfile) as s:`` starts the server, waits until ``s.url`` answers,
    and stops the whole process group on exit, whatever ended the block."""

    def __init__(self, command: ServerCommand, port: int, log_path: Path, pidfile: Path,
                 ready_timeout_s: float = 300.0, log: Callable[[str], None] = print):
        self.command, self.port, self.log_path, self.pidfile = command, port, Path(log_path), Path(pidfile)
        self.ready_timeout_s, self.log = ready_timeout_s, log
        self.url = f"http://{HOST}:{port}"
        self.proc: subprocess.Popen | None = None
        self.ready_s: float | None = None  # start to ready

    @property
    def model_name(self) -> str:
        return self.command.model_name

    @property
    def metrics_path(self) -> str | None:
        return self.command.metrics_path

    @property
    def metrics_prefixes(self) -> tuple[str, ...]:
        return self.command.metrics_prefixes

    def __enter__(self) -> Server:
        stop_stale(self.pidfile, self.log)
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"starting server on {self.url}: {' '.join(self.command.argv)} (log: {self.log_path})")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.command.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, **self.command.env}, cwd=self.command.cwd)
        self._started = time.monotonic()
        self.pidfile.write_text(json.dumps({"pid": self.proc.pid, "pgid": self.proc.pid, "port": self.port,
                                            "argv": _cmdline(self.proc.pid) or self.command.argv,
                                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))

    def wait_ready(self) -> None:
        url = self.url + self.command.ready_path
        deadline = self._started + self.ready_timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ServerNotReady(f"the server exited with code {code} before it was ready; its log "
                                     f"{self.log_path} ends:\n{log_tail(self.log_path)}")
            if http_ok(url, timeout_s=2.0):
                self.ready_s = time.monotonic() - self._started
                self.log(f"server ready after {self.ready_s:.1f} s")
                return
            time.sleep(0.5)
        raise ServerNotReady(f"the server did not answer GET {url} within ready_timeout_s = "
                             f"{self.ready_timeout_s:g} s; its log {self.log_path} ends:\n{log_tail(self.log_path)}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        _kill_group(self.proc.pid, grace_s=15.0, reap=self.proc.poll)
        self.proc.wait(timeout=10)
        self.log(f"server stopped (exit code {self.proc.returncode})")
        self.pidfile.unlink(missing_ok=True)
        self.proc = None


class Stopped(BaseException):
    """The job got SIGTERM or SIGINT: unwinds ``with`` blocks so servers are stopped."""


def stop_on_signals() -> None:
    """Make SIGTERM and SIGINT raise :class:`Stopped` in the main thread (the default SIGTERM action ends the
    process without running ``finally`` blocks, which would leave the server running)."""
    def _raise(signum, _frame):
        raise Stopped(f"stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)


def scrape_metrics(url: str, prefixes: tuple[str, ...] = ("vllm:",), headers: dict | None = None) -> dict[str, float]:
    """Prometheus samples whose name starts with one of ``prefixes`` (histogram buckets included), as
    {"name{labels}": value}; empty when the endpoint does not answer."""
    import httpx

    try:
        r = httpx.get(url, timeout=5.0, trust_env=False, headers=headers or {})
    except httpx.HTTPError:
        return {}
    if r.status_code != 200:
        return {}
    out = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line.startswith(prefixes):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out
