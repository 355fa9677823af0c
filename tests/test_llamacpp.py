"""llama.cpp: the gguf artifact builder and the llamacpp engine, on the embedded model.

The tests that need llama-cpp-python run only in an interpreter that has it (the llamacpp env):
    /work/envs-cache/llamacpp/bin/python -m pytest tests/test_llamacpp.py
Under the driver's python they are skipped; the params/config checks run everywhere.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import yaml

from conftest import REPO

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama_cpp is not importable in this interpreter "
                                     "(run pytest with the llamacpp env's python)")
NEW_TOKENS = 16
PROMPT = "What are the differences between Javascript and Python?"


# ---------------------------------------------------------------------------------------------- no llama_cpp needed
def test_params_are_validated_and_the_error_lists_the_allowed_types():
    from llmbench import artifacts

    assert artifacts.resolved("gguf", {"type": "Q4_K_M"}) == {"type": "Q4_K_M"}
    with pytest.raises(ValueError) as e:
        artifacts.resolved("gguf", {"type": "Q9_X"})
    assert "Q4_K_M" in str(e.value) and "Q8_0" in str(e.value) and "F16" in str(e.value)
    with pytest.raises(ValueError, match="params.type: required; allowed values are F32, F16"):
        artifacts.resolved("gguf", {})
    with pytest.raises(ValueError, match="params.imatrix: unknown parameter of method gguf"):
        artifacts.resolved("gguf", {"type": "Q8_0", "imatrix": "x"})


def test_synthetic_models_are_refused(tmp_path):
    from llmbench.artifacts import gguf

    with pytest.raises(ValueError, match="synthetic"):
        gguf.build(tmp_path, {"synthetic": {"preset": "llama-2-7b", "seed": 0}}, {"type": "Q8_0"}, tmp_path / "out")


def test_commit_is_read_from_the_changelog_section_of_the_version():
    from llmbench.artifacts.gguf import llama_cpp_commit

    log = ("## [Unreleased]\n\n## [0.3.36]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098\n\n"
           "## [0.3.35]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@4df29be4f\n")
    assert llama_cpp_commit(log, "0.3.36") == "0c1e57098"
    assert llama_cpp_commit(log, "0.3.35") is None or llama_cpp_commit(log, "0.3.35") == "4df29be4f"
    assert llama_cpp_commit(log, "0.3.1") is None


def _merge(base, extra):
    """Snakemake's --configfile merge: mappings key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def test_example_config_is_valid():
    from llmbench.planning import config as llmbench_config

    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    extra = yaml.safe_load((REPO / "config/examples/llamacpp.yaml").read_text())
    cfg = _merge(base, extra)
    llmbench_config.check(cfg, REPO)
    bad = _merge(cfg, {"variants": {"llamacpp-cpu": {"options": {"n_threads": "one", "n_ctx": 0}}},
                       "artifacts": {"gguf-q4_k_m": {"params": {"type": "Q4_K_X"}}}})
    with pytest.raises(llmbench_config.ConfigError) as e:
        llmbench_config.check(bad, REPO)
    for what in ("n_threads", "n_ctx = 0", "Q4_K_X", "Q4_K_M"):
        assert what in str(e.value), (what, str(e.value))


def test_gpu_layers_claim_a_gpu():
    from llmbench import engines

    assert engines.gpus("llamacpp", {"n_threads": 1}) == 0
    assert engines.gpus("llamacpp", {"n_gpu_layers": -1}) == 1
    # the job then measures a GPU's read bandwidth for the roofline, not the CPU's
    assert engines.placement("llamacpp", {"n_gpu_layers": -1}).device == "cuda"
    assert engines.placement("llamacpp", {"n_threads": 3}) == engines.base.Placement("cpu", 0, cpu_threads=3)


def test_engine_and_builder_use_the_llamacpp_env():
    from llmbench import artifacts, engines

    assert engines.env("llamacpp") == "llamacpp" and artifacts.env("gguf") == "llamacpp"
    assert (REPO / "envs/llamacpp.yaml").exists()


# ---------------------------------------------------------------------------------------------- with llama_cpp
@pytest.fixture(scope="module")
def built(embedded_model_dir, tmp_path_factory):
    """type -> artifact dir, built once per module through llmbench.artifacts.build (manifest included)."""
    from llmbench import artifacts

    out = {}
    root = tmp_path_factory.mktemp("gguf")
    for qtype in ("Q8_0", "Q4_K_M"):
        out[qtype] = root / qtype
        artifacts.build("gguf", embedded_model_dir, artifacts.resolved("gguf", {"type": qtype}), out[qtype])
    return out


def load(art_dir, **options):
    from llmbench import engines
    from llmbench.provenance import manifest

    engine = engines.create("llamacpp")
    loaded = engine.load(art_dir, manifest.verify(art_dir),
                         engines.resolved("llamacpp", {"n_threads": 1, "n_ctx": 1024, **options}))
    return engine, loaded


@needs_llama_cpp
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M"])
def test_manifest_records_converter_llama_cpp_version_and_quant_type(built, embedded_model_dir, qtype):
    from llmbench.provenance import manifest

    m = manifest.verify(built[qtype])
    assert m["method"] == "gguf" and m["params"] == {"type": qtype} and m["quant_type"] == qtype
    assert m["gguf"]["file_type"] == qtype and m["gguf"]["architecture"] == "llama"
    assert m["gguf"]["tensor_count"] > 200
    assert m["input_model_hash"] == manifest.read(embedded_model_dir)["content_hash"]
    conv = m["converter"]
    assert conv["script"] == "convert_hf_to_gguf.py" and len(conv["script_sha256"]) == 64
    assert conv["from"].startswith("PyPI sdist llama_cpp_python-") or conv["from"].startswith("LLMBENCH_LLAMACPP_SRC")
    lv = m["library_versions"]
    assert lv["llama-cpp-python"] and lv["gguf"] and lv["torch"] and lv["transformers"]
    assert lv["llama.cpp"] == conv["llama_cpp_commit"]
    if lv["llama-cpp-python"] == "0.3.36":
        assert conv["llama_cpp_commit"] == "0c1e57098"
    assert "model.gguf" in m["files"] and "tokenizer/tokenizer.json" in m["files"]
    types = m["gguf"]["tensor_types"]
    if qtype == "Q8_0":
        assert "Q8_0" in types
    else:
        assert "Q4_K" in types  # plus fallbacks for rows of 576 (not a multiple of 256)


@needs_llama_cpp
def test_q4_is_smaller_than_q8(built):
    size = {q: (d / "model.gguf").stat().st_size for q, d in built.items()}
    assert size["Q4_K_M"] < size["Q8_0"]


@needs_llama_cpp
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M"])
def test_generates_exactly_16_tokens_streamed_one_by_one(built, qtype):
    from llmbench.job.scenarios.latency import check_counts, measure

    engine, loaded = load(built[qtype])
    ids = engine.encode(PROMPT)
    m = measure(engine, ids, NEW_TOKENS)
    assert check_counts(m) == "", check_counts(m)
    assert m.output_tokens == NEW_TOKENS and m.streamed_tokens == NEW_TOKENS
    assert 0 < m.ttft_s <= m.latency_s and len(m.itl_s) == NEW_TOKENS - 1
    assert m.output_text.strip()
    rt = loaded.runtime
    assert rt["quant_type"] == qtype and rt["n_threads"] == 1 and rt["n_threads_batch"] == 1
    assert rt["n_gpu_layers"] == 0 and rt["n_ctx"] == 1024 and rt["flash_attn"] == "disabled"
    assert "CPU" in rt["system_info"]
    assert loaded.device == "cpu" and loaded.engine_version == loaded.library_versions["llama-cpp-python"]


@needs_llama_cpp
def test_input_ids_are_identical_to_the_hf_engine(built, embedded_model_dir):
    from transformers import AutoTokenizer

    from llmbench.job import prompts
    from llmbench.engines.hf import HFEngine

    engine, loaded = load(built["Q8_0"])
    hf = HFEngine()
    hf.tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    hf.vocab_size = engine.vocab_size  # HFEngine.encode reduces ids modulo the vocab (identity here)
    for p in prompts.load(REPO / "config/prompts/latency-9-prompts.jsonl"):
        assert engine.encode(p["prompt"]) == hf.encode(p["prompt"])
    assert loaded.runtime["tokenizer"].startswith("hf")


@needs_llama_cpp
def test_eos_does_not_end_generation_and_requests_do_not_reuse_the_kv_cache(built):
    engine, _ = load(built["Q8_0"])
    ids = engine.encode("Reply with one word: hello.")
    n = 96
    a = engine.generate(ids, n, lambda t: None).ids
    assert len(a) == n
    eog = {i for i in set(a) if engine.llama_cpp.llama_vocab_is_eog(engine.llm._model.vocab, i)}
    eog |= {i for i in (engine.tokenizer.eos_token_id, 2) if i in a}
    assert eog, f"the model never produced an end-of-generation token in {n} tokens; pick another prompt: {a}"
    b = engine.generate(ids, n, lambda t: None).ids
    assert b == a  # greedy and deterministic, prompt prefilled again from scratch
    assert engine.llm.n_tokens == len(ids) + n - 1  # the last sampled token is never evaluated


@needs_llama_cpp
def test_score_matches_greedy_generation(built):
    engine, _ = load(built["Q8_0"])
    ids = engine.encode(PROMPT)
    out = engine.generate(ids, NEW_TOKENS, lambda t: None).ids
    seq = ids + out
    logp, argmax = engine.score(seq)
    assert len(logp) == len(argmax) == len(seq) - 1
    assert all(x <= 1e-6 for x in logp)
    # teacher forcing on the model's own greedy output predicts that output (batched vs one-by-one eval
    # may flip a near-tie, so allow one)
    pred = argmax[len(ids) - 1:]
    assert sum(p == t for p, t in zip(pred, out)) >= NEW_TOKENS - 1


@needs_llama_cpp
def test_gpu_layers_on_a_cpu_build_fail_loudly(built):
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build has a GPU backend")
    with pytest.raises(RuntimeError, match="n_gpu_layers"):
        load(built["Q8_0"], n_gpu_layers=1)


@needs_llama_cpp
def test_f32_gguf_reproduces_the_hf_fp32_model(embedded_model_dir, tmp_path):
    """The conversion is lossless: llama.cpp on the F32 GGUF predicts what HF transformers fp32 predicts."""
    from llmbench import artifacts, engines
    from llmbench.provenance import manifest
    from llmbench.engines.hf import HFEngine

    out = tmp_path / "F32"
    artifacts.build("gguf", embedded_model_dir, artifacts.resolved("gguf", {"type": "F32"}), out)
    assert set(manifest.read(out)["gguf"]["tensor_types"]) == {"F32"}
    hf = HFEngine()
    hf.load(embedded_model_dir, manifest.read(embedded_model_dir),
            engines.resolved("hf", {"device": "cpu", "dtype": "float32", "num_threads": 1}))
    engine, _ = load(out)
    agree = total = 0
    for prompt in (PROMPT, "Implement a Python function to compute the Fibonacci numbers."):
        ids = hf.encode(prompt)
        assert engine.encode(prompt) == ids
        ref = hf.generate(ids, NEW_TOKENS, lambda t: None).ids
        out_ids = engine.generate(ids, NEW_TOKENS, lambda t: None).ids
        assert out_ids[0] == ref[0]
        _, argmax = engine.score(ids + ref)  # teacher forced on the HF continuation
        agree += sum(a == b for a, b in zip(argmax[len(ids) - 1:], ref))
        total += len(ref)
    assert agree / total >= 0.95, f"teacher-forced agreement with HF fp32 only {agree}/{total}"
