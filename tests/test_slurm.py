"""The workflow through Snakemake's SLURM executor (profiles/slurm) on a real single-node SLURM cluster
(tests/slurm_cluster.py: slurmctld + slurmd + munge, fake GPU gres). Skipped, with the reason, where SLURM is not
installed or the tests do not run as root."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import copy_workflow, failed_job_logs, small_config, write_yaml
from slurm_cluster import GPU_TYPE, LocalSlurm, missing

pytestmark = [pytest.mark.workflow, pytest.mark.skipif(missing() is not None, reason=str(missing()))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as c:
        yield c


def slurm_snakemake(wd, *args, timeout=1500):
    """The profile's command with what a 2-CPU test node needs: small memory requests, 2 threads, quick first
    status check. timeout kills with SIGKILL (snakemake outlives SIGTERM, slurm.md)."""
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--resources", "gpu=1",
           "--slurm-init-seconds-before-status-checks", "2",
           "--set-resources", *(f"{r}:mem_mb=3000" for r in ("build_artifact", "benchmark", "quality")),
           "--set-threads", "benchmark=2", "quality=2", "build_artifact=2", *args]
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=timeout)
    proc.wall_s = time.monotonic() - t
    return proc


def test_the_workflow_runs_through_slurm_and_gpu_jobs_get_the_gpus_they_claim(cluster, tmp_path):
    wd = copy_workflow(tmp_path / "wd")
    cfg = small_config()
    # A GPU line that runs nowhere here (MLC cannot be installed: its row says unverified) but claims gpu=1, so
    # SLURM must grant it a GPU of the configured model.
    cfg["artifacts"]["mlc-cuda"] = {"method": "mlc", "params": {"quantization": "q4f16_1", "device": "cuda"}}
    cfg["variants"]["mlc-cuda"] = {"engine": "mlc", "options": {"device": "cuda"}}
    cfg["benchmarks"].append({"models": ["smollm2-135m"], "artifacts": ["mlc-cuda"], "variants": ["mlc-cuda"],
                              "scenarios": ["latency"]})
    cfg["cluster"] = {"gpu_model": GPU_TYPE}
    write_yaml(wd / "config/config.yaml", cfg)

    proc = slurm_snakemake(wd)
    assert proc.returncode == 0, (f"{failed_job_logs(wd, proc)}{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n"
                                  f"{cluster.log_tail()}")
    out = proc.stdout + proc.stderr
    # built and measured on the cluster (the rows below carry their SLURM job ids); downloads, merges and plots
    # on the submitting host
    for rule in ("build_artifact", "benchmark"):  # a benchmark job also scores its line's quality
        assert f"\nrule {rule}:" in out and f"localrule {rule}:" not in out
    for rule in ("fetch_model", "merge_tables", "plots"):
        assert f"localrule {rule}:" in out

    runs = pd.read_parquet(wd / "results/tables/requests.parquet")
    by_variant = {v: g for v, g in runs.groupby("variant")}
    for v in ("hf-sdpa", "hf-eager"):
        ok = by_variant[v]
        assert (ok.status == "verified").all() and ok.success.all()
        assert (ok.output_tokens == ok.requested_output_tokens).all()
    # The GPU job asked SLURM for one GPU of the configured model and got one (fake gres: CUDA_VISIBLE_DEVICES)
    gpu_row = by_variant["mlc-cuda"].iloc[0]
    assert gpu_row.status == "unverified" and "mlc" in gpu_row.error.lower()
    assert json.loads(gpu_row.host)["cuda_visible_devices"] == "0"
    hosts = [json.loads(h) for h in runs.host]
    assert all(h["slurm_job_id"] for h in hosts), "a row not measured in a SLURM job"
    assert all(h["cuda_visible_devices"] is None for h, v in zip(hosts, runs.variant) if v != "mlc-cuda")

    again = slurm_snakemake(wd, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
