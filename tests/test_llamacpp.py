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
from llmbench.core.engine import Placement

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
    assert engines.placement("llamacpp", {"n_threads": 3}) == Placement("cpu", 0, cpu_threads=3)


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
def test_runtime_records_what_ran(built, qtype):
    engine, loaded = load(built[qtype])
    rt = loaded.runtime
    assert rt["quant_type"] == qtype and rt["n_threads"] == 1 and rt["n_threads_batch"] == 1
    assert rt["n_gpu_layers"] == 0 and rt["n_ctx"] == 1024 and rt["flash_attn"] == "disabled"
    assert "CPU" in rt["system_info"] and rt["tokenizer"].startswith("hf")
    assert loaded.device == "cpu" and loaded.engine_version == loaded.library_versions["llama-cpp-python"]
    assert len(engine.generate(engine.encode(PROMPT), 4, lambda t: None).ids) == 4  # Q4_K_M runs too


@needs_llama_cpp
def test_requests_do_not_reuse_the_kv_cache(built):
    """Each request prefills its prompt from scratch (the engine contract, exact counts past EOS included,
    is test_engine_contract.py)."""
    engine, _ = load(built["Q8_0"])
    ids = engine.encode("Reply with one word: hello.")
    engine.generate(engine.encode(PROMPT), NEW_TOKENS, lambda t: None)
    engine.generate(ids, NEW_TOKENS, lambda t: None)
    assert engine.llm.n_tokens == len(ids) + NEW_TOKENS  # this prompt and its tokens only (all decoded)


@needs_llama_cpp
def test_gpu_layers_on_a_cpu_build_fail_loudly(built):
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build has a GPU backend")
    with pytest.raises(RuntimeError, match="n_gpu_layers"):
        load(built["Q8_0"], n_gpu_layers=1)
