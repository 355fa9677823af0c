"""CTranslate2: the ct2 artifact builder and engine adapter on the embedded model (SmolLM2-135M), what is
particular to them; the engine contract (exact counts, scores, float32 = HF greedy) is test_engine_contract.py.

The int8 build takes about 35 s on 2 cores, once per module.
The last test is a real Snakemake run of config/examples/ct2.yaml (marker `workflow`).
"""

from __future__ import annotations

import math
import shutil

import pytest
import yaml

ctranslate2 = pytest.importorskip("ctranslate2")

from llmbench import artifacts, engines
from llmbench.planning import config as llmbench_config
from llmbench.provenance import manifest  # noqa: E402

from conftest import REPO, copy_workflow, snakemake, write_yaml  # noqa: E402

OPTIONS = engines.resolved("ct2", {"device": "cpu", "compute_type": "int8", "intra_threads": 2})


def merged(base: dict, over: dict) -> dict:
    """What `snakemake --configfile base over` gives: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


@pytest.fixture(scope="module")
def int8_dir(embedded_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ct2") / "ct2-int8"
    artifacts.build("ct2", embedded_model_dir, artifacts.resolved("ct2", {"quantization": "int8"}), out)
    return out


@pytest.fixture(scope="module")
def int8_engine(int8_dir):
    engine = engines.create("ct2")
    engine.loaded = engine.load(int8_dir, manifest.verify(int8_dir), OPTIONS)
    return engine


def test_int8_artifact_manifest(int8_dir, embedded_model_dir):
    m = manifest.verify(int8_dir)  # every file hashed and unchanged
    model = manifest.read(embedded_model_dir)
    assert m["method"] == "ct2" and m["params"] == {"quantization": "int8"}
    assert m["library"] == "ctranslate2" and m["quantization"] == "int8"
    assert m["library_versions"]["ctranslate2"] == ctranslate2.__version__
    assert m["library_versions"]["transformers"]
    assert m["converter"]["api"] == "ctranslate2.converters.TransformersConverter"
    assert m["converter"]["convert"]["quantization"] == "int8"
    assert m["input_model_hash"] == model["content_hash"]
    assert {"model.bin", "config.json", "vocabulary.json", "tokenizer.json", "chat_template.jinja"} <= set(m["files"])
    assert "model.safetensors" not in m["files"]
    # int8 weights: about a quarter of the fp32 model
    assert m["files"]["model.bin"]["size"] < 0.35 * model["files"]["model.safetensors"]["size"]


def test_artifact_params_are_checked_before_converting():
    ct2_builder = artifacts.module("ct2")
    with pytest.raises(ValueError, match="allowed values are int8, .*float32"):
        artifacts.resolved("ct2", {"quantization": "int4"})
    with pytest.raises(ValueError, match="params.dtype: unknown parameter of method ct2; allowed parameters are "
                                         "quantization"):
        artifacts.resolved("ct2", {"dtype": "float16"})
    # the builder's list is the installed library's
    from ctranslate2.specs.model_spec import ACCEPTED_MODEL_TYPES
    assert set(ct2_builder.QUANTIZATIONS) == set(ACCEPTED_MODEL_TYPES)


def test_engine_options_are_checked_by_the_config():
    cfg = merged(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                 yaml.safe_load((REPO / "config/examples/ct2.yaml").read_text()))
    assert llmbench_config.problems(cfg, REPO) == []
    cfg["variants"]["ct2-cpu"]["options"] = {"compute_type": "int4", "intra_threads": "2", "num_threads": 2}
    found = "\n".join(llmbench_config.problems(cfg, REPO))
    assert "variants.ct2-cpu.options.compute_type = 'int4': allowed values are default, int8" in found
    assert "variants.ct2-cpu.options.intra_threads = '2': expected int or null" in found
    assert "variants.ct2-cpu.options.num_threads: unknown option of engine ct2" in found


def test_runtime_records_what_ran(int8_engine):
    loaded = int8_engine.loaded
    rt = loaded.runtime
    assert loaded.device == "cpu" and loaded.engine_version == ctranslate2.__version__
    assert rt["compute_type"] == int8_engine.generator.compute_type
    assert rt["compute_type"].startswith("int8")  # int8 on this CPU runs as int8_float32
    assert rt["compute_type_requested"] == "int8"
    assert rt["device"] == "cpu" and rt["intra_threads"] == 2 and rt["num_generators"] == 1
    assert rt["end_token_ids_masked"] == [2]  # generation_config's <|im_end|>, as HF generate masks
    assert rt.get("selected_compute_type") == rt["compute_type"]  # from CTranslate2's own load log
    assert rt.get("gemm_s8_backend")
    assert int8_engine.peak_memory() is None  # the harness measures RSS on CPU


def test_score_is_what_score_batch_reports(int8_engine):
    """The adapter's score (one forward_batch) gives the actual-token log-probs CTranslate2's score_batch does
    (the engine contract itself is in test_engine_contract.py)."""
    eng = int8_engine
    ids = eng.encode("Write a haiku about the sea.")
    seq = ids + eng.generate(ids, 16, lambda t: None).ids
    logprobs, _ = eng.score(seq)
    ref = eng.generator.score_batch([[eng.id_to_token[i] for i in seq]])[0].log_probs
    assert len(ref) == len(logprobs) and max(abs(a - b) for a, b in zip(logprobs, ref)) < 1e-3


@pytest.mark.workflow
def test_example_config_runs_in_snakemake(embedded_model_dir, tmp_path_factory):
    """config/config.yaml + config/examples/ct2.yaml through Snakemake, 4 new tokens per request."""
    import pandas as pd

    wd = copy_workflow(tmp_path_factory.mktemp("wf-ct2"))
    # start from the already fetched model (copy2 keeps mtimes, so the manifest's quick check passes)
    shutil.copytree(embedded_model_dir, wd / "resources/models/smollm2-135m", copy_function=shutil.copy2)
    small = {"scenarios": {"latency": {"max_new_tokens": 4}}}
    if "software_envs" in yaml.safe_load((REPO / "config/config.yaml").read_text()):
        small["software_envs"] = {"backend": "none"}  # run in this interpreter; env building is tested elsewhere
    write_yaml(wd / "config/small.yaml", small)
    snakemake(wd, "--configfile", "config/config.yaml", "config/examples/ct2.yaml", "config/small.yaml")
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    assert set(req["variant"]) == {"hf-sdpa", "ct2-cpu"}
    assert req["success"].all() and (req["output_tokens"] == 4).all() and (req["streamed_tokens"] == 4).all()
    ct2_rows = req[req["engine"] == "ct2"]
    repeats = yaml.safe_load((REPO / "config/config.yaml").read_text())["scenarios"]["latency"]["repeats"]
    assert ct2_rows["warmup"].sum() == 9 and (~ct2_rows["warmup"]).sum() == 9 * repeats  # warmup: all, then repeats
    runtime = yaml.safe_load(ct2_rows["runtime"].iloc[0])
    assert runtime["compute_type"].startswith("int8") and runtime["intra_threads"] == 2
    art = manifest.verify(wd / "resources/artifacts/smollm2-135m/ct2-int8")
    assert art["library"] == "ctranslate2" and (ct2_rows["artifact_hash"] == art["content_hash"]).all()
    assert "ct2 / ct2-cpu" in (wd / "results/tables/latency.md").read_text()
    # the benchmark job scores the artifact with ct2's score() after its measured requests, same engine
    quality = wd / "results/runs/smollm2-135m/ct2-int8/ct2-cpu/latency.quality.parquet"
    if (wd / "workflow/rules/quality.smk").exists():
        q = pd.read_parquet(quality).iloc[0]
        assert q["engine"] == "ct2" and math.isfinite(q["perplexity"]) and q["scored_tokens"] > 0
        assert 0.5 < q["teacher_forced_agreement"] <= 1.0
