"""A run killed with SIGKILL in the middle of a benchmark job resumes with the same command; a live run is never
disturbed by a second one in the same directory (workflow/llmbench/planning/locks.py, profiles/default)."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import clone, small_config, snakemake, write_yaml

pytestmark = pytest.mark.workflow
TOKENS = 24  # long enough that a benchmark job runs for several seconds (27 requests) while the test acts


def _start(wd):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--resources", "gpu=1"]
    return subprocess.Popen(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: the kill takes its jobs too


def _wait_for_a_running_benchmark(wd, proc, timeout=600):
    incomplete = wd / ".snakemake/incomplete"
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        assert proc.poll() is None, proc.stdout.read()
        if incomplete.is_dir() and any(incomplete.iterdir()) and "rule benchmark" in _log(wd):
            return
        time.sleep(0.5)
    raise AssertionError("no benchmark job started")


def _log(wd):
    logs = sorted((wd / ".snakemake/log").glob("*.snakemake.log"), key=os.path.getmtime)
    return logs[-1].read_text() if logs else ""


def test_sigkilled_run_resumes_with_the_same_command_and_a_live_run_is_left_alone(finished_workflow, tmp_path):
    wd = clone(finished_workflow, tmp_path / "wd")
    cfg = small_config()
    cfg["scenarios"]["latency"]["max_new_tokens"] = TOKENS  # both benchmark jobs rerun
    write_yaml(wd / "config/config.yaml", cfg)
    first = _start(wd)
    try:
        _wait_for_a_running_benchmark(wd, first)
        # the same command while the first run lives: refused by Snakemake's lock, the first run undisturbed
        second = snakemake(wd, check=False)
        assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr
        assert "cleared" not in second.stderr
        assert first.poll() is None
        assert any((wd / ".snakemake/locks").glob("*.lock"))
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # as the OOM killer or a closed laptop would: no cleanup runs
        first.wait()
    assert any((wd / ".snakemake/locks").glob("*.lock")), "the killed run left no lock: nothing tested"
    assert any((wd / ".snakemake/incomplete").iterdir()), "the kill hit no running job: nothing tested"
    resumed = snakemake(wd)  # the README's command, nothing else
    assert f"cleared Snakemake's lock, left by a run that is gone (pid {first.pid} " in resumed.stderr
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    repeats = cfg["scenarios"]["latency"]["repeats"]
    for variant in ("hf-sdpa", "hf-eager"):
        mine = req[req["variant"] == variant]
        assert len(mine) == 9 * (1 + repeats) and mine["success"].all(), variant
        # rerun with the new length, nothing partial kept: every request got what it asked for, the measured ones
        # and the full-length warm-up TOKENS (the other warm-ups are shortened by warmup_new_tokens)
        assert (mine["output_tokens"] == mine["requested_output_tokens"]).all(), variant
        measured, warm = mine[~mine["warmup"]], mine[mine["warmup"]]
        assert (measured["requested_output_tokens"] == TOKENS).all() and warm["requested_output_tokens"].max() == TOKENS
    assert not any((wd / ".snakemake/incomplete").iterdir())
    assert "Nothing to be done" in snakemake(wd, "-n").stdout
