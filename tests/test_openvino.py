"""OpenVINO: the openvino artifact builder (optimum-intel + NNCF) and engine adapter (openvino_genai.LLMPipeline).

Param/option checks, the property mapping and the parser of GenAI's printout are pure functions and always run.
Building and loading need openvino_genai in the interpreter running pytest (the openvino env), else they skip:
  resources/envs/openvino/bin/python -m pytest tests/test_openvino.py
(pytest is not one of the env's pins: `resources/envs/openvino/bin/python -m pip install pytest` first; the env
has no `gguf` to fetch the embedded model: run the workflow once, or set LLMBENCH_TEST_MODEL_DIR, see conftest).
On 2 cores the int8 build takes about 80 s (once per module). The engine contract (exact counts past EOS,
scores, fp32 IR = HF greedy) is test_engine_contract.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import yaml

from llmbench import artifacts, engines
from llmbench.planning import config as llmbench_config
from llmbench.artifacts import openvino as ova
from llmbench.engines import openvino as ove

from conftest import REPO  # noqa: E402

HAVE_GENAI = importlib.util.find_spec("openvino_genai") is not None
needs_genai = pytest.mark.skipif(not HAVE_GENAI, reason="openvino_genai is not importable in this interpreter")

N = 16
OPTIONS = engines.resolved("openvino", {"device": "cpu", "num_threads": 2})
EXACT = engines.resolved("openvino", {"device": "cpu", "num_threads": 2, "inference_precision": "f32",
                                      "kv_cache_precision": "f32", "dynamic_quantization_group_size": 0})
INT4_NA = {"group_size": None, "ratio": None, "group_size_fallback": None}  # int4-only params elsewhere


def merged(base: dict, over: dict) -> dict:
    """What `snakemake --configfile base over` gives: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


# ------------------------------------------------------------------ always run: nothing heavy imported

def test_registered_without_importing_openvino():
    code = ("import sys, llmbench.engines as e, llmbench.artifacts as a; "
            "assert e.env('openvino', {'device': 'cpu'}) == 'openvino' and a.env('openvino') == 'openvino'; "
            "heavy = {'openvino', 'openvino_genai', 'optimum', 'nncf', 'torch', 'transformers'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "openvino" in engines.names() and "openvino" in artifacts.methods()
    assert engines.gpus("openvino", OPTIONS) == 0
    assert (REPO / "envs/openvino.yaml").exists()


@pytest.mark.parametrize("params, expected", [
    ({}, {"weight_format": "int8", "sym": False, **INT4_NA}),
    ({"weight_format": "int8", "sym": True}, {"weight_format": "int8", "sym": True, **INT4_NA}),
    ({"weight_format": "int4"}, {"weight_format": "int4", "sym": False, "group_size": 64, "ratio": 1.0,
                                 "group_size_fallback": "error"}),
    ({"weight_format": "int4", "group_size": -1, "ratio": 1, "sym": True, "group_size_fallback": "adjust"},
     {"weight_format": "int4", "sym": True, "group_size": -1, "ratio": 1, "group_size_fallback": "adjust"}),
    ({"weight_format": "fp16"}, {"weight_format": "fp16", "sym": False, **INT4_NA}),
])
def test_good_params(params, expected):
    assert artifacts.resolve("openvino", params) == (expected, [])


@pytest.mark.parametrize("params, expected", [
    ({"weight_format": "int3"}, "weight_format = 'int3': allowed values are int8, int4, fp16, fp32"),
    ({"bits": 4}, "params.bits: unknown parameter of method openvino; allowed parameters are weight_format, sym, "
                  "group_size"),
    ({"weight_format": "int8", "group_size": 64}, "group_size = 64: applies to weight_format int4 only"),
    ({"weight_format": "fp32", "ratio": 0.8}, "ratio = 0.8: applies to weight_format int4 only"),
    ({"weight_format": "fp16", "sym": True}, "sym applies to int8/int4 only"),
    ({"weight_format": "int4", "group_size": 0}, "group_size = 0: expected a positive int or -1"),
    ({"weight_format": "int4", "group_size": True}, "group_size = True"),
    ({"weight_format": "int4", "ratio": 1.5}, "ratio = 1.5: expected a number in (0, 1]"),
    ({"weight_format": "int4", "group_size_fallback": "round"}, "group_size_fallback = 'round'"),
    ({"sym": "yes"}, "sym = 'yes': expected bool"),
])
def test_bad_params_are_config_problems(params, expected):
    _, found = artifacts.resolve("openvino", params)
    assert any(expected in p for p in found), found


def test_export_call_and_cli_equivalent():
    p = artifacts.resolved("openvino", {"weight_format": "int4", "sym": True})
    assert ova.quantization_kwargs(p) == {"bits": 4, "sym": True, "group_size": 64, "ratio": 1.0,
                                          "group_size_fallback": "error"}
    assert ova.cli_equivalent(REPO, p).endswith("--weight-format int4 --group-size 64 --ratio 1.0 --sym <artifact dir>")
    assert ova.quantization_kwargs(artifacts.resolved("openvino", {})) == {"bits": 8, "sym": False}
    assert ova.quantization_kwargs(artifacts.resolved("openvino", {"weight_format": "fp32"})) is None


def test_example_config_is_valid_and_options_are_checked():
    cfg = merged(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                 yaml.safe_load((REPO / "config/examples/openvino.yaml").read_text()))
    assert llmbench_config.problems(cfg, REPO) == []
    # lists are replaced on merge: the example keeps the quality reference's job
    assert any("q4_1-dequant-fp32" in b["artifacts"] and "hf-sdpa" in b["variants"] for b in cfg["benchmarks"])
    assert {a for b in cfg["benchmarks"] for a in b["artifacts"]} >= {"openvino-int8", "openvino-int4"}
    cfg["variants"]["openvino-cpu"]["options"] = {"device": "gpu", "num_threads": "2", "kv_cache_precision": "i8",
                                                  "compute_type": "int8", "num_threads_x": 1}
    cfg["artifacts"]["openvino-int4"]["params"] = {"weight_format": "int4", "group_size": 64.0, "bits": 4}
    found = "\n".join(llmbench_config.problems(cfg, REPO))
    assert "variants.openvino-cpu.options.device = 'gpu': allowed values are cpu" in found
    assert "variants.openvino-cpu.options.num_threads = '2': expected int or null" in found
    assert "variants.openvino-cpu.options.kv_cache_precision = 'i8': allowed values are auto, u8" in found
    assert "variants.openvino-cpu.options.compute_type: unknown option of engine openvino" in found
    assert "artifacts.openvino-int4.params.group_size = 64.0: expected int" in found
    assert "artifacts.openvino-int4.params.bits: unknown parameter of method openvino" in found


@pytest.mark.parametrize("options, expected", [
    ({"num_threads": 0}, "num_threads = 0"),
    ({"dynamic_quantization_group_size": -1}, "dynamic_quantization_group_size = -1"),
    ({"attention_backend": "SDPA", "prefix_caching": True}, "prefix_caching applies to attention_backend PA only"),
])
def test_option_problems(options, expected):
    assert any(expected in p for p in engines.resolve("openvino", options)[1])
    assert engines.resolve("openvino", EXACT)[1] == []


def test_options_map_to_openvino_properties():
    assert ove.ov_properties(engines.resolved("openvino", {"device": "cpu"})) == {
        "PERFORMANCE_HINT": "LATENCY", "ATTENTION_BACKEND": "PA"}
    props = ove.ov_properties({**EXACT, "inference_precision": "auto", "attention_backend": "SDPA",
                               "performance_hint": "THROUGHPUT", "prefix_caching": False})
    assert props == {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "THROUGHPUT", "KV_CACHE_PRECISION": "f32",
                     "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0, "ATTENTION_BACKEND": "SDPA"}


def test_parse_genai_printout():
    text = ("Model: OV Tokenizer\n  NUM_STREAMS: 1\n  INFERENCE_PRECISION_HINT: bf16\nEXECUTION_DEVICES:\n CPU: AMD EPYC\n"
            "SchedulerConfig { \n  max_num_batched_tokens: 18446744073709551615\n  enable_prefix_caching: false\n }\n"
            "Model: LLM with Paged Attention\n  INFERENCE_NUM_THREADS: 2\n  INFERENCE_PRECISION_HINT: f32\n"
            "  KV_CACHE_PRECISION: u8\n  MODEL_DISTRIBUTION_POLICY: \n  EXECUTION_DEVICES: CPU\n"
            "EXECUTION_DEVICES:\n CPU: AMD EPYC 9R14\n")
    got = ove.parse_properties(text)
    assert got["OV Tokenizer"]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert got["SchedulerConfig"] == {"max_num_batched_tokens": "18446744073709551615", "enable_prefix_caching": "false"}
    llm = got["LLM with Paged Attention"]
    assert llm["INFERENCE_PRECISION_HINT"] == "f32" and llm["KV_CACHE_PRECISION"] == "u8"
    assert llm["INFERENCE_NUM_THREADS"] == "2" and llm["MODEL_DISTRIBUTION_POLICY"] == ""
    assert llm["DEVICE_FULL_NAMES"] == {"CPU": "AMD EPYC 9R14"} and llm["EXECUTION_DEVICES"] == "CPU"


# ------------------------------------------------------------------ need openvino_genai (the openvino env)

@pytest.fixture(scope="module")
def model_dir(embedded_model_dir):
    return embedded_model_dir


@pytest.fixture(scope="module")
def int8_dir(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "openvino-int8"
    artifacts.build("openvino", model_dir, artifacts.resolved("openvino", {"weight_format": "int8"}), out)
    return out


@pytest.fixture(scope="module")
def int8_engine(int8_dir):
    from llmbench.provenance import manifest

    engine = engines.create("openvino")
    engine.loaded = engine.load(int8_dir, manifest.verify(int8_dir), OPTIONS)
    return engine


@needs_genai
def test_int8_artifact_manifest(int8_dir, model_dir):
    from llmbench.provenance import manifest

    m = manifest.verify(int8_dir)  # every file hashed and unchanged
    model = manifest.read(model_dir)
    assert m["method"] == "openvino" and m["params"] == {"weight_format": "int8", "sym": False, **INT4_NA}
    assert m["library"] == "optimum-intel" and m["weight_format"] == "int8"
    lv = m["library_versions"]
    assert all(lv[k] for k in ("openvino", "openvino-genai", "openvino-tokenizers", "optimum-intel", "nncf"))
    assert lv["transformers"].startswith("5.5.")
    applied = m["compression"]["applied"]  # NNCF's own record in the IR
    assert applied["mode"] == "int8_asym" and applied["group_size"] == "-1" and applied["ratio"] == "1.0"
    assert m["compression"]["quantization_config"] == {"bits": 8, "sym": False}
    assert "--weight-format int8" in m["export"]["cli_equivalent"]
    assert set(m["weight_constants_by_type"]) <= {"u8", "f16", "f32"} and "u8" in m["weight_constants_by_type"]
    assert m["input_model_hash"] == model["content_hash"]
    assert {"openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml",
            "tokenizer.json", "chat_template.jinja", "generation_config.json", "config.json"} <= set(m["files"])
    assert m["tokenizer_conversion"]["check"]["encode_identical"] is True
    assert m["tokenizer_conversion"]["check"]["decode_identical"] is True
    # int8 weights: about a quarter of the fp32 model
    assert m["files"]["openvino_model.bin"]["size"] < 0.3 * model["files"]["model.safetensors"]["size"]


@needs_genai
def test_runtime_records_what_ran(int8_engine):
    import openvino_genai

    loaded = int8_engine.loaded
    rt = loaded.runtime
    assert loaded.device == "cpu" and loaded.engine_version == openvino_genai.__version__
    assert rt["compiled_properties_source"].startswith("GenAI printout")
    assert rt["pipeline_model"] == "LLM with Paged Attention" and rt["attention_backend"] == "PA"
    assert rt["inference_num_threads"] == "2" and rt["execution_devices"] == "CPU"
    assert rt["inference_precision"] in ("bf16", "f32", "f16") and rt["kv_cache_precision"]
    assert rt["prefix_caching"] is False and rt["scheduler_config"]["enable_prefix_caching"] == "false"
    assert rt["weight_compression"]["mode"] == "int8_asym"
    assert rt["eos_token_id_masked"] == 2  # generation_config's <|im_end|>, as HF generate masks
    assert 0 < loaded.weight_bytes < 200e6 and "weight_bytes" not in rt
    assert int8_engine.peak_memory() is None  # the harness measures RSS on CPU


@needs_genai
def test_engine_metrics_and_score_backend_are_recorded(int8_engine):
    """GenAI's own per-request figures, and the scorer's compiled properties (the engine contract itself is
    test_engine_contract.py)."""
    eng = int8_engine
    ids = eng.encode("Write a haiku about the sea.")
    gen = eng.generate(ids, N, lambda t: None)
    perf = gen.engine_metrics["genai_perf_metrics"]
    assert perf["generated_tokens"] == perf["streamed_tokens"] == N and perf["input_tokens"] == len(ids)
    assert "score_backend" not in eng.runtime  # the scorer is loaded on first use
    eng.score(ids + gen.ids)
    assert eng.runtime["score_backend"]["api"].startswith("optimum.intel.OVModelForCausalLM")
