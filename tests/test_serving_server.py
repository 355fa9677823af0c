"""The server step of a serving job (serving/server.py): started, waited for, always stopped with its whole
process group, and found again after a killed run. A stand-in server (fake_openai_server.py) plays the engine."""

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

from conftest import REPO
from llmbench.serving.server import Server, free_port, stop_stale
from llmbench.core.server import ServerCommand, ServerNotReady

FAKE = str(REPO / "tests/fake_openai_server.py")


def command(port: int, *extra: str) -> ServerCommand:
    return ServerCommand(argv=[sys.executable, FAKE, "--port", str(port), *extra], model_name="llmbench")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_a_server_is_ready_then_stopped_with_its_process_group(tmp_path):
    port = free_port()
    with Server(command(port, "--ready-after", "1"), port, tmp_path / "s.log", tmp_path / "s.pid", 30, log=print) as s:
        pgid = s.proc.pid
        assert s.ready_s >= 1.0 and (tmp_path / "s.pid").exists() and s.alive()
    assert not group_alive(pgid) and not (tmp_path / "s.pid").exists()
    assert "GET /v1/models" in (tmp_path / "s.log").read_text()  # the server's own output is captured


def test_a_server_that_never_gets_ready_fails_within_its_timeout_naming_the_log(tmp_path):
    port = free_port()
    t = time.monotonic()
    with pytest.raises(ServerNotReady, match=r"did not answer GET .*/v1/models within ready_timeout_s = 2 s; "
                                             r"its log .*s\.log ends"):
        with Server(command(port, "--ready-after", "60"), port, tmp_path / "s.log", tmp_path / "s.pid", 2):
            pass
    assert time.monotonic() - t < 30
    assert not (tmp_path / "s.pid").exists()


def test_a_server_that_exits_at_start_fails_at_once_with_its_exit_code_and_log(tmp_path):
    port = free_port()
    with pytest.raises(ServerNotReady, match=r"exited with code 3 before it was ready(.|\n)*cannot start"):
        with Server(command(port, "--exit-at-start"), port, tmp_path / "s.log", tmp_path / "s.pid", 60):
            pass


JOB = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from llmbench.serving.server import Server, stop_on_signals
    from llmbench.core.server import ServerCommand
    port, tmp = int(sys.argv[1]), Path(sys.argv[2])
    stop_on_signals()
    cmd = ServerCommand(argv=[sys.executable, {fake!r}, "--port", str(port)], model_name="llmbench")
    with Server(cmd, port, tmp / "s.log", tmp / "s.pid", 30) as s:
        (tmp / "pgid").write_text(str(s.proc.pid))
        time.sleep(120)
""")


def start_job(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    job = subprocess.Popen([sys.executable, "-c", JOB.format(fake=FAKE), str(port), str(tmp_path)],
                           env={**os.environ, "PYTHONPATH": str(REPO / "workflow")})
    deadline = time.monotonic() + 60
    while not (tmp_path / "pgid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return job, int((tmp_path / "pgid").read_text())


def test_sigterm_to_the_job_stops_the_server(tmp_path):
    job, pgid = start_job(tmp_path)
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=60)
    assert job.returncode != 0 and not group_alive(pgid) and not (tmp_path / "s.pid").exists()


def test_a_server_left_by_a_sigkilled_job_is_stopped_by_the_next_run(tmp_path):
    job, pgid = start_job(tmp_path)
    job.kill()  # SIGKILL: the job cannot stop anything
    job.wait(timeout=30)
    assert group_alive(pgid)  # the server outlived its job
    messages = []
    assert stop_stale(tmp_path / "s.pid", messages.append)
    assert not group_alive(pgid) and "a killed earlier run left behind" in messages[0]
    assert not (tmp_path / "s.pid").exists()


def test_a_stale_pidfile_whose_pid_runs_something_else_is_not_signalled(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        (tmp_path / "s.pid").write_text(json.dumps({"pid": other.pid, "pgid": other.pid, "port": 1,
                                                    "argv": ["python", "-m", "vllm.entrypoints.openai.api_server"],
                                                    "started": "earlier"}))
        messages = []
        assert not stop_stale(tmp_path / "s.pid", messages.append)
        assert other.poll() is None and "nothing to stop" in messages[0]
    finally:
        other.kill()
