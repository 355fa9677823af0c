"""Serving jobs against remote endpoints, in a real Snakemake run on the small workflow (stand-in servers on
127.0.0.1 play the endpoints): a healthy one gives a row per request and the serving tables; one that dies
mid-run gives error rows and a clear job failure while the others finish (--keep-going); an unreachable one
fails at once; the token, read from the variable the config names, appears in no output, log or metadata."""

from __future__ import annotations

import os
import subprocess

import pandas as pd
import pytest

from conftest import clone, small_config, snakemake, start_fake_server, write_yaml
from llmbench.serving.server import free_port

pytestmark = pytest.mark.workflow
TOKEN = "planted-token-7f3a9c1e5b"
REQUESTS = 6


def _start(port: int, *extra: str) -> subprocess.Popen:
    return start_fake_server(port, "--token-env", "LLMBENCH_TEST_TOKEN", *extra,
                             env={**os.environ, "LLMBENCH_TEST_TOKEN": TOKEN})


def _config(ports: dict[str, int]) -> dict:
    cfg = small_config()
    cfg["variants"].update({name: {"engine": "remote", "options": {
        "url": f"http://127.0.0.1:{port}", "model": "llmbench", "token_env": "LLMBENCH_TEST_TOKEN"}}
        for name, port in ports.items()})
    cfg["scenarios"]["serve"] = {"kind": "serving", "dataset": "prompts",
                                 "prompts": cfg["scenarios"]["latency"]["prompts"], "max_new_tokens": 6,
                                 "concurrency": [1, 2], "num_requests": REQUESTS, "warmup_requests": 1,
                                 "request_timeout_s": 30}
    cfg["variants"]["tgi-gpu"] = {"engine": "tgi", "options": {}}  # no launcher here: an unverified row
    cfg["benchmarks"].append({"models": ["smollm2-135m"], "artifacts": ["q4_1-dequant-fp32"],
                              "variants": [*ports, "tgi-gpu"], "scenarios": ["serve"]})
    return cfg


@pytest.fixture(scope="module")
def remote_run(finished_workflow, tmp_path_factory):
    wd = clone(finished_workflow, tmp_path_factory.mktemp("remote") / "wd")
    ports = {"remote-ok": free_port(), "remote-dies": free_port(), "remote-gone": free_port()}
    servers = [_start(ports["remote-ok"]), _start(ports["remote-dies"], "--die-after", "4")]  # gone: none
    try:
        write_yaml(wd / "config/config.yaml", _config(ports))
        proc = snakemake(wd, "--keep-going", check=False, env={"LLMBENCH_TEST_TOKEN": TOKEN})
    finally:
        for s in servers:
            s.kill()
            s.wait()
    return wd, proc


def _log(wd, variant: str) -> str:
    return (wd / f"logs/serve/smollm2-135m/q4_1-dequant-fp32/{variant}/serve.log").read_text()


def test_a_healthy_endpoint_gives_a_row_for_every_request(remote_run):
    wd, proc = remote_run
    rows = pd.read_parquet(wd / "results/serving/runs/smollm2-135m/q4_1-dequant-fp32/remote-ok/serve.parquet")
    for point in ("c=1,rate=inf", "c=2,rate=inf"):
        mine = rows[rows["point"] == point]
        assert len(mine) == REQUESTS + 1 and mine["warmup"].sum() == 1, point
        assert mine["success"].all() and (mine["usage_completion_tokens"] == 6).all()
    assert (rows["status"] == "verified").all()
    assert '"artifact_checked": false' in rows["runtime"].iloc[0]
    points = sorted(p.name for p in (wd / "results/serving/points/smollm2-135m/q4_1-dequant-fp32/remote-ok/serve").glob("*.json"))
    assert points == ["00-c=1,rate=inf.json", "01-c=2,rate=inf.json"]


def test_an_endpoint_that_dies_mid_run_fails_its_job_and_the_others_finish(remote_run):
    wd, proc = remote_run
    assert proc.returncode != 0
    log = _log(wd, "remote-dies")
    assert "stopped answering during sweep point c=1,rate=inf" in log
    assert log.count("\nrow ") >= REQUESTS and '"success": false' in log  # every request logged, failures too
    assert not (wd / "results/serving/runs/smollm2-135m/q4_1-dequant-fp32/remote-dies/serve.parquet").exists()
    assert (wd / "results/tables/latency.md").exists()  # the other jobs finished


def test_an_unreachable_endpoint_fails_at_once_naming_it(remote_run):
    wd, _ = remote_run
    log = _log(wd, "remote-gone")
    assert "remote endpoint http://127.0.0.1:" in log and "is unreachable" in log
    assert "starting server" not in log


def test_a_server_that_cannot_start_here_is_an_unverified_line_with_its_reason(remote_run, tmp_path):
    from llmbench.analysis import serving

    wd, _ = remote_run
    runs = wd / "results/serving/runs/smollm2-135m/q4_1-dequant-fp32"
    tgi = pd.read_parquet(runs / "tgi-gpu/serve.parquet")
    assert len(tgi) == 1 and tgi["status"].iloc[0] == "unverified"
    assert "text-generation-launcher is not on PATH" in tgi["error"].iloc[0]
    assert "text-generation-launcher" in tgi["runtime"].iloc[0]  # the command it would have run
    serving.merge([runs / "remote-ok/serve.parquet", runs / "tgi-gpu/serve.parquet"], tmp_path)
    lines = pd.read_parquet(tmp_path / "serving.parquet").set_index("variant")
    assert lines.loc["tgi-gpu", "status"] == "unverified" and lines.loc["tgi-gpu", "requests"] == 0
    assert "unverified: text-generation-launcher" in lines.loc["tgi-gpu", "note"]
    assert lines.loc["remote-ok"]["valid"].all() and "cannot check that it serves" in lines.loc["remote-ok"]["note"].iloc[0]
    assert "unverified (see note)" in (tmp_path / "serving.md").read_text()


def test_the_token_appears_in_no_output_log_or_metadata(remote_run):
    wd, _ = remote_run
    leaks = [str(p.relative_to(wd)) for p in wd.rglob("*")
             if p.is_file() and not p.is_symlink() and "/resources/" not in str(p) and TOKEN.encode() in p.read_bytes()]
    assert leaks == []
    assert (wd / "results/serving/runs/smollm2-135m/q4_1-dequant-fp32/remote-ok/serve.parquet").exists()  # it was sent
