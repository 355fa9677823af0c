"""The default workflow, shrunk to few tokens, for real: every artifact and engine, each in its own venv.

This is the expensive test (it builds every env once, llama-cpp-python from source among them); it runs last.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake, write_yaml

pytestmark = pytest.mark.workflow
TOKENS = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["scenarios"]["latency"]["max_new_tokens"] = TOKENS
    # quality keeps the default 1024 held-out tokens (a few seconds a job): at 256 the perplexity ratio of an
    # int8 artifact is too noisy for the few-percent bound below
    assert cfg["software_envs"]["backend"] == "venv"
    wd = copy_workflow(tmp_path_factory.mktemp("all"))
    write_yaml(wd / "config/config.yaml", cfg)
    shared = os.environ.get("LLMBENCH_TEST_ENVS_DIR")
    if shared:  # developers: reuse envs built by an earlier run (an env whose hash matches is not rebuilt)
        (wd / "resources").mkdir()
        (wd / "resources/envs").symlink_to(Path(shared).resolve())
    snakemake(wd, "--keep-going", timeout=3 * 3600)
    return wd, cfg


def test_every_configured_job_has_rows(run):
    wd, cfg = run
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    wanted = {(a, v) for b in cfg["benchmarks"] for a in b["artifacts"] for v in b["variants"]}
    assert set(zip(req["artifact"], req["variant"])) == wanted


def test_verified_rows_have_exact_token_counts(run):
    wd, _ = run
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    ok = req[req["status"] == "verified"]
    assert (ok["output_tokens"] == TOKENS).all() and (ok["streamed_tokens"] == TOKENS).all() and ok["success"].all()
    # the engines that install here really ran
    assert {"hf", "vllm", "llamacpp", "ct2", "openvino"} <= set(ok["engine"])


def test_each_engine_ran_in_its_own_env(run):
    wd, _ = run
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    per_engine = req[req["status"] == "verified"].groupby("engine").first()
    hashes = per_engine["env_hash"]
    assert hashes.str.len().gt(0).all() and hashes.nunique() == len(hashes), hashes
    versions = per_engine["library_versions"].map(json.loads)
    # e.g. vLLM's CPU build brings its own transformers, OpenVINO's optimum-intel needs transformers < 5.6
    transformers = {e: v.get("transformers") for e, v in versions.items() if v.get("transformers")}
    assert len(set(transformers.values())) >= 2, transformers
    prefixes = per_engine["host"].map(lambda h: json.loads(h)["env_prefix"])
    assert prefixes.nunique() == len(prefixes), prefixes


def test_mlc_is_unverified_with_its_reason(run):
    wd, _ = run
    summary = pd.read_parquet(wd / "results/tables/latency.parquet").set_index("variant")
    mlc = summary.loc["mlc-cpu"]
    assert mlc["status"] == "unverified" and "mlc_llm" in mlc["note"]
    assert "unverified" in (wd / "results/tables/latency.md").read_text()


def test_quality_beside_speed_for_every_real_artifact(run):
    wd, _ = run
    summary = pd.read_parquet(wd / "results/tables/latency.parquet")
    verified = summary[summary["status"] == "verified"]
    assert verified["perplexity"].notna().all(), verified[["artifact", "variant", "perplexity"]]
    assert verified["greedy_agreement"].between(0, 1).all()
    quantized = verified[verified["artifact"] != "reference-fp32"]
    assert quantized["teacher_forced_agreement"].between(0, 1).all()
    ref = summary[(summary["artifact"] == "reference-fp32")]["perplexity"].iloc[0]
    # sanity bounds of quality: 8-bit within a few percent of the reference, 4-bit bounded
    for art, ppl in verified.groupby("artifact")["perplexity"].first().items():
        limit = 1.05 if ("int8" in art or "q8" in art) else 1.5
        assert ppl <= ref * limit, (art, ppl, ref)


def test_artifacts_carry_manifests_that_inspect_reads(run):
    wd, cfg = run
    from llmbench import inspect, manifest

    for name in cfg["artifacts"]:
        d = wd / "resources/artifacts/smollm2-135m" / name
        m = manifest.verify(d)
        assert m["input_model_hash"] and m["method"] == cfg["artifacts"][name]["method"]
        assert "integrity:" in inspect.describe(d)
