"""Real Snakemake runs of the default workflow on the embedded model, with few new tokens.

One module-scoped workdir: the first test runs everything; later tests change one thing and check that
exactly the jobs that depend on it are planned (dry runs), or that bad states stop the run.
"""

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

import conftest
from conftest import NEW_TOKENS, clone, read_json, small_config, snakemake, write_yaml

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def done(finished_workflow):
    write_yaml(finished_workflow / "config/config.yaml", small_config())
    return finished_workflow


def planned(wd, cfg=None):
    """Rule name -> job count of a dry run (after writing cfg, if given)."""
    if cfg is not None:
        write_yaml(wd / "config/config.yaml", cfg)
    return conftest.planned(wd)


def test_full_run_writes_tables_with_exact_token_counts_and_provenance(done):
    req = pd.read_parquet(done / "results/tables/requests.parquet")
    assert set(req["variant"]) == {"hf-sdpa", "hf-eager"}
    assert (req["output_tokens"] == NEW_TOKENS).all() and (req["streamed_tokens"] == NEW_TOKENS).all()
    assert req["success"].all()
    # every prompt is a flagged warm-up first (warmup: all), then all 9 prompts are measured twice (repeats: 2);
    # no measured request is the first of its input length
    per_variant = req[req["variant"] == "hf-sdpa"].sort_values("request_index")
    assert per_variant["warmup"].tolist() == [True] * 9 + [False] * 18
    assert not per_variant[~per_variant["warmup"]]["first_of_shape"].any()
    assert (per_variant["ttft_s"] > 0).all() and (per_variant["latency_s"] >= per_variant["ttft_s"]).all()
    art = read_json(done / "resources/artifacts/smollm2-135m/q4_1-dequant-fp32/manifest.json")
    model = read_json(done / "resources/models/smollm2-135m/manifest.json")
    assert (req["artifact_hash"] == art["content_hash"]).all() and (req["model_hash"] == model["content_hash"]).all()
    assert art["input_model_hash"] == model["content_hash"]
    for col in ("engine_version", "device_name", "git_commit", "config_hash", "timestamp", "library_versions"):
        assert req[col].str.len().gt(0).all(), col
    runtime = pd.Series(req["runtime"]).map(yaml.safe_load)
    assert {r["attn_implementation"] for r in runtime} == {"sdpa", "eager"}  # read back, not copied

    summary = pd.read_parquet(done / "results/tables/latency.parquet")
    assert len(summary) == 2 and (summary["requests"] == 18).all() and (summary["failed"] == 0).all()
    assert summary["valid"].all()
    assert (summary["tokens_per_s_ci_low"] <= summary["tokens_per_s"]).all()
    assert (summary["tokens_per_s"] <= summary["tokens_per_s_ci_high"]).all()
    assert (summary["avg_output_tokens"] == NEW_TOKENS).all()
    # quality beside speed: perplexity of the artifact, greedy agreement of each variant with the reference's
    assert summary["perplexity"].between(1, 1000).all()
    ref = summary.set_index("variant").loc["hf-sdpa"]
    assert ref["greedy_agreement"] == 1.0 and ref["first_divergence_p50"] == NEW_TOKENS
    # hf-eager's agreement is what its ids and the reference's give (a share in [0, 1] could never fail)
    measured = req[~req["warmup"] & (req["repeat"] == 0)]
    ref_ids = {p: list(i) for p, i in zip(measured[measured["variant"] == "hf-sdpa"]["prompt_id"],
                                         measured[measured["variant"] == "hf-sdpa"]["output_ids"])}
    eager = measured[measured["variant"] == "hf-eager"]
    same = [sum(a == b for a, b in zip(list(i), ref_ids[p])) / NEW_TOKENS for p, i in zip(eager["prompt_id"], eager["output_ids"])]
    assert summary.set_index("variant").loc["hf-eager", "greedy_agreement"] == pytest.approx(sum(same) / len(same))
    # each line's quality is its own variant's (one quality job per variant), none borrowed
    assert sorted(summary["quality_by"]) == ["hf / hf-eager (float32)", "hf / hf-sdpa (float32)"]
    assert not summary["quality_borrowed"].any() and summary.set_index("variant").loc["hf-eager", "kl_mean"] >= 0
    # the roofline beside the figure: bandwidth measured in the job with the engine's 2 threads, MBU a share
    # that is physically possible (never over 1), weights as run = 134.5 M parameters x 4 bytes (fp32)
    assert (summary["roofline_tokens_per_s"] > 0).all() and summary["mbu"].between(0, 1).all()
    assert (summary["mbu_flag"] == "").all() and (summary["threads"] == 2).all()
    assert ((summary["weight_bytes"] / (134_515_008 * 4) - 1).abs() < 0.01).all()
    assert (summary["decode_bytes"] > summary["weight_bytes"]).all()  # tied table read in full + the KV cache
    assert req["bandwidth_method"].str.contains("2 threads").all() and (summary["ran_as"] == "dense fp32").all()
    md = (done / "results/tables/latency.md").read_text()
    assert "hf / hf-sdpa" in md and "tokens/s" in md and "ran as" in md and "threads" in md
    for d in ("resources/models/smollm2-135m", "resources/artifacts/smollm2-135m/q4_1-dequant-fp32"):
        assert (done / d / "manifest.json").exists()


def test_second_run_does_nothing(done):
    assert planned(done) == {}


def test_the_report_has_its_plots_and_tables_and_snakemake_builds_it(done):
    from llmbench.planning import plan

    for name in plan.PLOT_CATEGORIES:
        for fmt in ("png", "svg"):
            assert (done / f"results/plots/{name}.{fmt}").stat().st_size > 1000, (name, fmt)
    for name in plan.TABLE_CATEGORIES:
        assert "hf / hf-sdpa" in (done / f"results/report/{name}.html").read_text(), name
    req = pd.read_parquet(done / "results/tables/requests.parquet")
    # the model's shape from its config.json: 134,515,008 parameters minus 61 RMSNorm weights of 576
    assert {yaml.safe_load(x)["matmul_parameters"] for x in req["model_shape"]} == {134_515_008 - 61 * 576}
    summary = pd.read_parquet(done / "results/tables/latency.parquet")
    assert (summary["prefill_flops"] > 2 * 106_000_000 * 30).all()   # > 2 x layer weights x the shortest prompt
    assert summary["mfu_prefill"].isna().all() and (summary["peak_flops_source"] == "").all()  # a CPU: no datasheet
    # energy: a figure where this machine's RAPL is readable, else the reason; never a silent blank
    readable = summary["energy_j_per_output_token"].notna()
    assert (readable | summary["energy_note"].str.len().gt(0)).all()
    assert summary["usd_per_1m_output_tokens"].isna().all()   # the default config prices nothing
    assert "no price configured" in (done / "results/plots/cost.svg").read_text()
    proc = snakemake(done, "--report", "results/report.html")
    html = (done / "results/report.html").read_text(errors="replace")
    assert proc.returncode == 0 and "decode-vs-limit.png" in html and "Cost and energy" in html


README_INSTALL = 'pip install -e ".[workflow]"'
README_REPORT = "snakemake --cores 1 --resources gpu=1 --report results/report.html"


def test_readmes_report_command_works_after_readmes_install(done, tmp_path):
    """Issue 32, item 7: after the README's install, in a fresh venv and nothing else, the README's report
    command builds the report (it failed: "Python package pygments must be installed to create reports")."""
    readme = (conftest.REPO / "README.md").read_text()
    assert README_INSTALL in readme and README_REPORT in readme
    venv = tmp_path / "readme-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    install = subprocess.run(["bash", "-c", README_INSTALL], cwd=conftest.REPO, env=env, capture_output=True,
                             text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    wd = clone(done, tmp_path / "wd")
    (wd / "results/report.html").unlink(missing_ok=True)
    proc = subprocess.run(["bash", "-c", README_REPORT], cwd=wd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "decode-vs-limit.png" in (wd / "results/report.html").read_text(errors="replace")


def test_a_copied_checkout_plans_the_same_env_builds(done, tmp_path):
    """build_env's inputs and params do not depend on where the checkout lives: a finished env build, copied
    with its checkout to another path, is not planned again (it was: its env file was an absolute input)."""
    wd = clone(done, tmp_path / "a")
    cfg = small_config()
    cfg["software_envs"] = {"backend": "venv"}
    write_yaml(wd / "config/config.yaml", cfg)
    target = "resources/envs/hf/env.json"
    (wd / target).parent.mkdir(parents=True, exist_ok=True)
    (wd / target).write_text("{}")  # a stand-in: only its metadata matters to the plan
    snakemake(wd, "--touch", target)  # the target after a flag: --resources takes every word up to the next
    assert conftest.planned(wd, target) == {}
    moved = clone(wd, tmp_path / "elsewhere" / "b")
    assert conftest.planned(moved, target) == {}


def test_changing_one_variant_reruns_only_its_jobs_and_the_merge(done):
    cfg = small_config()
    cfg["variants"]["hf-eager"]["options"]["num_threads"] = 1
    try:
        # its benchmark, which also scores its quality (quality is per line), nothing of hf-sdpa's
        assert planned(done, cfg) == {"benchmark": 1, "merge_tables": 1, "plots": 1, "report_tables": 1, "all": 1}
        outputs = [o for line in re.findall(r"^\s+output: (.+)$", snakemake(done, "-n").stdout, re.M)
                   for o in line.split(", ")]
        assert sorted(o for o in outputs if o.startswith(("results/quality/", "results/runs/"))) == [
            "results/runs/smollm2-135m/q4_1-dequant-fp32/hf-eager/latency.parquet",
            "results/runs/smollm2-135m/q4_1-dequant-fp32/hf-eager/latency.quality.parquet"]
    finally:
        write_yaml(done / "config/config.yaml", small_config())


def test_changing_max_new_tokens_reruns_benchmarks_not_fetch_or_artifacts(done):
    cfg = small_config()
    cfg["scenarios"]["latency"]["max_new_tokens"] = NEW_TOKENS + 1
    try:
        assert planned(done, cfg) == {"benchmark": 2, "merge_tables": 1, "plots": 1, "report_tables": 1, "all": 1}
    finally:
        write_yaml(done / "config/config.yaml", small_config())


def test_changing_the_artifact_dtype_rebuilds_it_and_downstream(done):
    cfg = small_config()
    cfg["artifacts"]["q4_1-dequant-fp32"]["params"]["dtype"] = "bfloat16"
    try:
        assert planned(done, cfg) == {"build_artifact": 1, "benchmark": 2, "merge_tables": 1, "plots": 1, "report_tables": 1, "all": 1}
    finally:
        write_yaml(done / "config/config.yaml", small_config())


def test_edited_artifact_stops_the_run_with_a_clear_message(done, tmp_path):
    wd = clone(done, tmp_path / "copy")
    cfg_file = wd / "resources/artifacts/smollm2-135m/q4_1-dequant-fp32/config.json"
    text = cfg_file.read_text()
    cfg_file.unlink()  # a new file, not the hard-linked original
    cfg_file.write_text(text.replace('"num_hidden_layers": 30', '"num_hidden_layers": 29'))
    proc = snakemake(wd, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "resources/artifacts/smollm2-135m/q4_1-dequant-fp32" in out and "config.json: sha256" in out
    assert "--forcerun resources/artifacts/smollm2-135m/q4_1-dequant-fp32" in out
    assert "rule benchmark" not in out  # stopped before any job

    # following the message: the same command with --forcerun DIR rebuilds it and remeasures what used it
    assert conftest.planned(wd, "--forcerun", "resources/artifacts/smollm2-135m/q4_1-dequant-fp32") == {
        "build_artifact": 1, "benchmark": 2, "merge_tables": 1, "plots": 1, "report_tables": 1, "all": 1}


def test_deleted_model_file_is_detected(done, tmp_path):
    wd = clone(done, tmp_path / "copy")
    (wd / "resources/models/smollm2-135m/tokenizer.json").unlink()
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0 and "tokenizer.json: deleted" in proc.stdout + proc.stderr


def test_a_crashing_job_leaves_no_parquet_and_keeps_the_others(done, tmp_path):
    wd = clone(done, tmp_path / "copy")
    cfg = small_config()
    cfg["variants"]["hf-broken"] = {"engine": "hf", "options": {"device": "cuda"}}  # no GPU here: load fails
    cfg["benchmarks"][0]["variants"].append("hf-broken")
    write_yaml(wd / "config/config.yaml", cfg)
    proc = snakemake(wd, "--keep-going", check=False)
    assert proc.returncode != 0
    assert not list((wd / "results/runs").rglob("hf-broken/*.parquet"))
    assert not list((wd / "results/runs").rglob("*.tmp"))
    log = (wd / "logs/benchmark/smollm2-135m/q4_1-dequant-fp32/hf-broken/latency.log").read_text()
    assert "device=cuda but torch sees no CUDA device" in log
    assert (wd / "results/runs/smollm2-135m/q4_1-dequant-fp32/hf-sdpa/latency.parquet").exists()
