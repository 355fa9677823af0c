"""Snakemake's between-workflow cache (`--cache`, SNAKEMAKE_OUTPUT_CACHE) on fetch_model and build_artifact: a second
checkout reuses the fetched model and the built artifact, a changed parameter misses, and a tampered cache entry
is caught by the manifest check before anything is measured. Measurement jobs are never cached."""

from __future__ import annotations

import time

import pytest

from conftest import copy_workflow, small_config, snakemake, write_yaml

pytestmark = pytest.mark.workflow
ART = "resources/artifacts/smollm2-135m/q4_1-dequant-fp32"
BENCH = "results/runs/smollm2-135m/q4_1-dequant-fp32/hf-sdpa/latency.parquet"


def checkout(path, cfg=None):
    wd = copy_workflow(path)
    write_yaml(wd / "config/config.yaml", cfg or small_config())
    return wd


def built(wd, *logs):
    """Any of these job logs has content (a job taken from the cache leaves its log empty or absent)."""
    return any((wd / log).exists() and (wd / log).stat().st_size for log in logs)


def cached_run(wd, cache, *targets, check=True):
    t = time.monotonic()
    # targets after a flag without arguments (--cache and --resources would take them as theirs)
    proc = snakemake(wd, "--cache", "--printshellcmds", *targets, check=check, env={"SNAKEMAKE_OUTPUT_CACHE": str(cache)})
    proc.wall_s = time.monotonic() - t
    return proc


def test_a_second_checkout_reuses_model_and_artifact_and_a_tampered_entry_is_caught(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    first = cached_run(checkout(tmp_path / "a"), cache, ART)
    assert "Moving output file" in first.stdout + first.stderr
    entries = sorted(p for p in cache.iterdir() if p.is_dir())
    assert len(entries) == 2, entries  # the model and the artifact

    b = checkout(tmp_path / "b")
    second = cached_run(b, cache, ART)
    print(f"model + artifact: built {first.wall_s:.1f} s, from the cache {second.wall_s:.1f} s (wall, incl. planning)")
    measured = cached_run(b, cache, BENCH)
    out = second.stdout + second.stderr + measured.stdout + measured.stderr
    for d in (ART, "resources/models/smollm2-135m"):
        assert f"Symlinking output file {d}/manifest.json from cache" in out, "rebuilt, not reused"
    assert not built(b, "logs/build_artifact/smollm2-135m/q4_1-dequant-fp32.log", "logs/fetch_model/smollm2-135m.log")
    assert (b / BENCH).exists()  # the reused artifact passed the job's manifest check and was measured
    assert "rule benchmark" in out  # measurements are never taken from the cache

    # a changed parameter of the artifact is another cache entry: rebuilt, not the stale one reused
    cfg = small_config()
    cfg["artifacts"]["q4_1-dequant-fp32"]["params"]["dtype"] = "bfloat16"
    c = checkout(tmp_path / "c", cfg)
    cached_run(c, cache, ART)
    assert built(c, "logs/build_artifact/smollm2-135m/q4_1-dequant-fp32.log")
    assert not built(c, "logs/fetch_model/smollm2-135m.log")  # the model is the same: reused

    # tamper with the artifact's cache entry (same size, other bytes): the job's manifest check stops it
    art_entry = (tmp_path / "a" / ART).resolve()  # the stored output became a link to its entry
    assert art_entry in entries
    cfg_file = art_entry / "config.json"
    cfg_file.write_text(cfg_file.read_text().replace('"num_hidden_layers": 30', '"num_hidden_layers": 29'))
    d = checkout(tmp_path / "d")
    proc = cached_run(d, cache, BENCH, check=False)
    assert proc.returncode != 0
    log = (d / "logs/benchmark/smollm2-135m/q4_1-dequant-fp32/hf-sdpa/latency.log").read_text()
    assert "config.json: sha256" in log and not (d / BENCH).exists()
