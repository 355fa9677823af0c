"""GPTQ and AWQ (llm-compressor -> compressed-tensors) on the embedded model, loaded by the HF adapter.

The calibration corpus and param checks are fast. The builds are marked `slow`: the test builds use a smaller
calibration set (8 x 128 tokens; AWQ also n_grid 5) than the method defaults (16 x 256, n_grid 20). Measured
on 2 cores: GPTQ 8 x 128 about 5.5 min and AWQ 8 x 128 n_grid 20 about 14 min while other jobs shared the
cores; the defaults, alone on 2 pinned cores of another machine: GPTQ 53 s, AWQ 184 s. They skip cleanly when llmcompressor is not importable (it lives
in envs/quant.yaml); loading needs compressed-tensors in the HF engine's env.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest
import yaml

from llmbench import artifacts, engines
from llmbench.planning import config as llmbench_config
from llmbench.core import corpus
from llmbench.provenance import manifest

from conftest import REPO, copy_workflow, snakemake, write_yaml  # noqa: E402

N = 8
CALIB = {"num_samples": 8, "seq_len": 128}
LOAD = engines.resolved("hf", {"device": "cpu", "dtype": "auto"})
HAVE_LLMCOMPRESSOR = importlib.util.find_spec("llmcompressor") is not None
needs_llmcompressor = pytest.mark.skipif(not HAVE_LLMCOMPRESSOR, reason="llmcompressor not installed (envs/quant.yaml)")


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


# ---------------------------------------------------------------- corpus (fast)

def test_corpus_is_fixed_disjoint_and_hashed():
    calib, held = corpus.calibration_texts(), corpus.heldout_text()
    assert len(calib) > 40 and all(calib) and len(held) > 50_000
    assert not any(doc in held for doc in calib)  # no calibration document is in the held-out part
    paragraphs = {p for doc in calib for p in doc.split("\n\n")}
    assert not paragraphs & set(held.split("\n\n"))  # nor any paragraph (pydoc topics repeat each other)
    d = corpus.describe()
    assert d["python"].count(".") == 2 and "pydoc_data" in d["source"]
    assert d["calibration_sha256"] == corpus.calibration_sha256() != corpus.heldout_sha256() == d["heldout_sha256"]
    import hashlib
    assert hashlib.sha256(corpus.calibration_text().encode()).hexdigest() == d["calibration_sha256"]


# ---------------------------------------------------------------- params (fast, no library needed)

def problems(method, params):
    return artifacts.resolve(method, params)[1]


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_params_are_checked_before_anything_runs(method):
    mod = artifacts.module(method)
    assert mod.ENV == "quant" and artifacts.env(method) == "quant"
    cases = {
        "bits": (3, "params.bits = 3: allowed values are 4, 8"),
        "sym": ("yes", "params.sym = 'yes': expected bool"),
        "group_size": (0, "params.group_size = 0: expected a value >= 1"),
        "num_samples": (2.5, "params.num_samples = 2.5: expected int"),
        "dtype": ("float16", "params.dtype = 'float16': allowed values are float32, bfloat16"),
        "ignore": (["lm_head", 3], "params.ignore = ['lm_head', 3]: expected a list of module names (strings)"),
    }
    for key, (value, msg) in cases.items():
        assert problems(method, {key: value}) == [msg]
    assert problems(method, {"nope": 1}) == [f"params.nope: unknown parameter of method {method}; allowed "
                                             f"parameters are {', '.join(mod.PARAMS)}"]
    defaults = artifacts.resolved(method, {})
    assert defaults["group_size"] == 64 and defaults["bits"] == 4 and defaults["ignore"] == ["lm_head"]
    defaults["ignore"].append("x")  # a resolved list is the caller's own
    assert artifacts.resolved(method, {})["ignore"] == ["lm_head"]


def test_method_specific_params():
    assert problems("gptq", {}) == [] and problems("awq", {"n_grid": 5}) == []
    assert problems("awq", {"bits": "4", "n_grid": 0}) == ["params.bits = '4': allowed values are 4, 8",
                                                          "params.n_grid = 0: expected a value >= 1"]
    assert problems("gptq", {"bits": 4.0}) == ["params.bits = 4.0: allowed values are 4, 8"]  # 4.0 is not 4

    assert artifacts.resolved("gptq")["sym"] is True and artifacts.resolved("awq")["sym"] is False  # W4A16_ASYM
    assert problems("gptq", {"damp": 1.5}) == ["params.damp = 1.5: expected a number in (0, 1)"]
    assert problems("gptq", {"actorder": "dynamic"}) == [
        "params.actorder = 'dynamic': allowed values are static, group, weight, null"]
    assert problems("awq", {"duo_scaling": 1}) == [  # 1 is not true
        "params.duo_scaling = 1: allowed values are true, false, both"]


def test_group_size_must_divide_the_hidden_size():
    torch = pytest.importorskip("torch")
    from llmbench.artifacts import _quant

    # SmolLM2-135M's shapes: hidden 576, MLP 1536; 128 does not divide 576
    model = torch.nn.ModuleDict({"q_proj": torch.nn.Linear(576, 576), "down_proj": torch.nn.Linear(1536, 576),
                                 "lm_head": torch.nn.Linear(576, 100)})
    assert _quant.check_group_size(model, 64, ["lm_head"]) == [576, 1536]
    with pytest.raises(ValueError, match=r"params.group_size = 128: does not divide the input size\(s\) \[576\]"
                                         r".*allowed group sizes here: \[16, 32, 64\]"):
        _quant.check_group_size(model, 128, ["lm_head"])


def test_example_config_is_valid():
    cfg = merged(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                 yaml.safe_load((REPO / "config/examples/quant.yaml").read_text()))
    assert llmbench_config.problems(cfg, REPO) == []
    assert llmbench_config.resolved_params(cfg, "gptq-w4g64")["group_size"] == 64
    assert llmbench_config.resolved_params(cfg, "awq-w4g64")["group_size"] == 64


# ---------------------------------------------------------------- real builds (slow)

def _build(method, embedded_model_dir, tmp_path_factory, params):
    pytest.importorskip("llmcompressor")
    out = tmp_path_factory.mktemp(method) / f"{method}-w4g64"
    artifacts.build(method, embedded_model_dir, artifacts.resolved(method, params), out)
    return out


@pytest.fixture(scope="module")
def gptq_dir(embedded_model_dir, tmp_path_factory):
    return _build("gptq", embedded_model_dir, tmp_path_factory, {"bits": 4, "group_size": 64, **CALIB})


@pytest.fixture(scope="module")
def awq_dir(embedded_model_dir, tmp_path_factory):
    # n_grid 5 (default 20): AWQ's grid search dominates its CPU time
    return _build("awq", embedded_model_dir, tmp_path_factory, {"bits": 4, "group_size": 64, "n_grid": 5, **CALIB})


def _check_manifest(d, method, embedded_model_dir, sym):
    m = manifest.verify(d)  # every file hashed and unchanged
    model = manifest.read(embedded_model_dir)
    assert m["method"] == method and m["input_model_hash"] == model["content_hash"]
    assert m["library"] == "llm-compressor" and "archived" in m["library_note"] and "deprecated" in m["library_note"]
    import llmcompressor
    assert m["library_versions"]["llmcompressor"] == llmcompressor.__version__
    assert m["library_versions"]["compressed-tensors"] and m["library_versions"]["transformers"]
    assert m["algorithm"] == method
    assert m["scheme"]["name"] == ("W4A16" if sym else "W4A16_ASYM")
    assert m["scheme"]["weights"] == {"num_bits": 4, "type": "int", "symmetric": sym, "strategy": "group",
                                      "group_size": 64}
    assert m["format"] == "compressed-tensors (pack-quantized)"
    c = m["calibration"]
    assert (c["num_samples"], c["seq_len"], c["tokens"]) == (8, 128, 1024)
    assert m["calibration_sha256"] == c["corpus_calibration_sha256"] == corpus.calibration_sha256()
    assert c["python"] == corpus.describe()["python"] and len(c["used_tokens_sha256"]) == 64
    assert "small calibration set" in c["note"]  # CI-sized calibration is said in the manifest
    assert m["recipe"]  # llm-compressor's own recipe.yaml, as data
    assert m["resolved_params"]["group_size"] == 64 and m["quantized_input_sizes"] == [576, 1536]
    assert m["build_device"] == "cpu"
    assert m["build_time_s"] > 0 and m["peak_rss_bytes"] > 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(m["files"])
    # 4-bit packed weights + fp32 embeddings (tied lm_head): well under half the fp32 model
    assert m["files"]["model.safetensors"]["size"] < 0.5 * model["files"]["model.safetensors"]["size"]
    qcfg = __import__("json").loads((d / "config.json").read_text())["quantization_config"]
    assert qcfg["quant_method"] == "compressed-tensors" and qcfg["format"] == "pack-quantized"
    return m


def _load_and_generate(d):
    eng = engines.create("hf")
    loaded = eng.load(d, manifest.read(d), LOAD)
    ids = eng.encode("Explain what a hash table is.")
    streamed = []
    out = eng.generate(ids, N, streamed.append).ids
    assert len(out) == N and streamed == out
    text = eng.decode(out)
    assert text.strip()
    rt = loaded.runtime
    assert rt["quantization"]["quant_method"] == "compressed-tensors"
    assert rt["linear_modules"]  # the classes that actually ran, see the report in the build log
    print(f"\n{d.name}: linear_modules={rt['linear_modules']} dtype={rt['dtype']} text={text!r}")
    return loaded, text


@pytest.mark.slow
@needs_llmcompressor
def test_gptq_manifest(gptq_dir, embedded_model_dir):
    m = _check_manifest(gptq_dir, "gptq", embedded_model_dir, sym=True)
    assert m["gptq"] == {"dampening_frac": 0.01, "block_size": 128, "actorder": "static"}
    assert m["cpu_workarounds"] == []  # GPTQ needs none


@pytest.mark.slow
@needs_llmcompressor
def test_gptq_loads_in_hf_and_generates_exactly_n(gptq_dir):
    pytest.importorskip("compressed_tensors")
    _load_and_generate(gptq_dir)


@pytest.mark.slow
@needs_llmcompressor
def test_awq_manifest(awq_dir, embedded_model_dir):
    m = _check_manifest(awq_dir, "awq", embedded_model_dir, sym=False)
    assert m["awq"] == {"n_grid": 5, "duo_scaling": True}
    assert len(m["cpu_workarounds"]) == 1 and "pin_memory" in m["cpu_workarounds"][0]


@pytest.mark.slow
@needs_llmcompressor
def test_awq_loads_in_hf_and_generates_exactly_n(awq_dir):
    pytest.importorskip("compressed_tensors")
    _load_and_generate(awq_dir)


@pytest.mark.slow
@pytest.mark.workflow
@needs_llmcompressor
def test_example_config_runs_in_snakemake(embedded_model_dir, tmp_path_factory):
    """config/config.yaml + config/examples/quant.yaml through Snakemake, tiny calibration, 4 new tokens."""
    import pandas as pd

    wd = copy_workflow(tmp_path_factory.mktemp("wf-quant"))
    shutil.copytree(embedded_model_dir, wd / "resources/models/smollm2-135m", copy_function=shutil.copy2)
    tiny = {"num_samples": 4, "seq_len": 64}
    small = {"scenarios": {"latency": {"max_new_tokens": 4}},
             "artifacts": {"gptq-w4g64": {"params": tiny}, "awq-w4g64": {"params": {**tiny, "n_grid": 5}}}}
    if "software_envs" in yaml.safe_load((REPO / "config/config.yaml").read_text()):
        small["software_envs"] = {"backend": "none"}  # run in this interpreter; env building is tested elsewhere
    write_yaml(wd / "config/small.yaml", small)
    snakemake(wd, "--configfile", "config/config.yaml", "config/examples/quant.yaml", "config/small.yaml",
              timeout=3600)
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    assert set(req["artifact"]) == {"q4_1-dequant-fp32", "gptq-w4g64", "awq-w4g64"}
    assert req["success"].all() and (req["output_tokens"] == 4).all()
    for name in ("gptq-w4g64", "awq-w4g64"):
        art = manifest.verify(wd / f"resources/artifacts/smollm2-135m/{name}")
        assert art["library"] == "llm-compressor" and art["calibration"]["tokens"] == 4 * 64
        rows = req[req["artifact"] == name]
        assert (rows["artifact_hash"] == art["content_hash"]).all()
