"""MLC LLM: the mlc artifact builder and engine adapter, tested as far as they can be without mlc_llm.

mlc_llm cannot be installed on the machines this was written on (PyPI has only empty placeholder packages, MLC's
wheel index does not resolve), so nothing here runs MLC. Tested: the exact commands the builder would run, the
param checks, MLC's input directory, the predicted mlc-chat-config.json (MLC's logic read from its source), the
unverified build and benchmark row, the env file, and the adapter's token-id plumbing against a stand-in class
shaped like MLC's MLCEngine (not MLC). Quick: no network, no model loading beyond hashing the embedded model.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmbench import artifacts, engines
from llmbench.job import bench
from llmbench.planning import envs
from llmbench.provenance import manifest
from llmbench.planning import config as llmbench_config
from llmbench.core.engine import EngineUnavailable, has_hook

from conftest import REPO

mlc = artifacts.module("mlc")
MLC_IMPORTS = mlc.import_error() is None
needs_no_mlc = pytest.mark.skipif(MLC_IMPORTS, reason="mlc_llm imports here: the unavailable path is not taken")

OUT = "/w/resources/artifacts/smollm2-135m/mlc-q4f16_1"
INPUT = f"{OUT}/mlc-input"


def P(**params):
    """Complete params, as the builder's helpers receive them from the workflow."""
    return artifacts.resolved("mlc", params)


# ------------------------------------------------------------------------------------------- commands

def test_commands_are_mlcs_documented_three_steps():
    argvs = mlc.commands(INPUT, OUT, P(quantization="q4f16_1"), model_name="smollm2-135m")
    assert argvs == [
        ["mlc_llm", "convert_weight", INPUT, "--quantization", "q4f16_1", "--device", "cpu", "-o", OUT],
        ["mlc_llm", "gen_config", INPUT, "--quantization", "q4f16_1", "--conv-template", "chatml", "-o", OUT],
        ["mlc_llm", "compile", f"{OUT}/mlc-chat-config.json", "--device", "cpu",
         "-o", f"{OUT}/lib/smollm2-135m-q4f16_1-cpu.so"],
    ]


def test_commands_with_every_param():
    params = {"quantization": "q4f32_1", "conv_template": "llama-3", "device": "cuda", "context_window_size": 2048,
              "prefill_chunk_size": 512, "opt": "O3"}
    convert, gen, comp = mlc.commands(INPUT, OUT, P(**params), model_name="m")
    assert convert == ["mlc_llm", "convert_weight", INPUT, "--quantization", "q4f32_1", "--device", "cuda", "-o", OUT]
    assert gen == ["mlc_llm", "gen_config", INPUT, "--quantization", "q4f32_1", "--conv-template", "llama-3",
                   "--context-window-size", "2048", "--prefill-chunk-size", "512", "-o", OUT]
    assert comp == ["mlc_llm", "compile", f"{OUT}/mlc-chat-config.json", "--device", "cuda", "--opt", "O3",
                    "-o", f"{OUT}/lib/m-q4f32_1-cuda.so"]
    # metal libraries are .dylib in MLC's docs; the library is named after the model dir by default
    assert mlc.commands("/m/Some-Model", OUT, P(device="metal"))[2][-1] == f"{OUT}/lib/Some-Model-q4f16_1-metal.dylib"


def test_script_is_valid_bash_and_relocatable(tmp_path):
    argvs = mlc.commands(INPUT, OUT, P(context_window_size=1024), model_name="smollm2-135m")
    text = mlc.script(argvs, OUT, "a header\nsecond line")
    assert OUT not in text  # the artifact dir is "$OUT": the build dir is renamed after the build
    path = tmp_path / "commands.sh"
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True)
    cmd_lines = [line for line in text.splitlines() if line.startswith("mlc_llm ")]
    assert len(cmd_lines) == 3
    # with OUT expanded, the words are exactly the argv lists
    for line, argv in zip(cmd_lines, argvs):
        assert shlex.split(line.replace('"$OUT"', OUT)) == argv
    assert text.index('mkdir -p "$OUT"/lib') < text.index("mlc_llm compile")  # compile needs the directory


# --------------------------------------------------------------------------------------------- params

@pytest.mark.parametrize("params, message", [
    ({"quantization": "int4"}, r"quantization = 'int4': allowed values are q0f16, .*q4f16_1"),
    ({"device": "tpu"}, r"device = 'tpu': allowed values are cpu, cuda, rocm, vulkan, metal, opencl"),
    ({"conv_template": "smollm"}, r"conv_template = 'smollm': allowed values are .*chatml"),
    ({"context_window_size": 0}, r"context_window_size = 0: expected a value >= 1"),
    ({"prefill_chunk_size": True}, r"prefill_chunk_size = True: expected int or null"),
    ({"opt": "O4"}, r"opt = 'O4': allowed values are O0, O1, O2, O3, null"),
    ({"bits": 4}, r"params.bits: unknown parameter of method mlc; allowed parameters are quantization, "
                  r"conv_template, device"),
])
def test_params_are_checked(params, message):
    with pytest.raises(ValueError, match=message):
        artifacts.resolved("mlc", params)


def test_default_config_passes_and_bad_params_are_config_errors():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert cfg["artifacts"]["mlc-q4f16_1"]["method"] == "mlc" and cfg["variants"]["mlc-cpu"]["engine"] == "mlc"
    assert not [p for p in llmbench_config.problems(cfg, REPO) if "mlc" in p]
    cfg["artifacts"]["mlc-q4f16_1"]["params"] = {"quantization": "q5", "context_window_size": "big"}
    cfg["variants"]["mlc-cpu"]["options"] = {"device": "tpu", "threads": 2}
    found = llmbench_config.problems(cfg, REPO)
    assert any("artifacts.mlc-q4f16_1.params.quantization = 'q5'" in p for p in found)
    assert any("artifacts.mlc-q4f16_1.params.context_window_size = 'big': expected int or null" in p for p in found)
    assert any("variants.mlc-cpu.options.device = 'tpu'" in p for p in found)
    assert any("variants.mlc-cpu.options.threads: unknown option of engine mlc" in p for p in found)


def test_envs_and_gpus():
    assert artifacts.env("mlc") == "mlc" and engines.env("mlc", {"device": "cpu"}) == "mlc"
    assert engines.gpus("mlc", {"device": "cpu"}) == 0 and engines.gpus("mlc", {"device": "vulkan"}) == 1
    assert engines.placement("mlc", {"device": "vulkan"}).device == "cuda"  # a GPU's bandwidth for the roofline
    # no teacher-forced scoring in MLC's API: no quality job is planned for mlc artifacts
    assert not has_hook(engines.adapter_class("mlc"), "score")


# ------------------------------------------------------------------------- MLC's input, predicted config

def test_rope_parameters_are_given_to_mlc_as_rope_theta():
    cfg, changes = mlc.mlc_config({"model_type": "llama", "rope_parameters": {"rope_theta": 100000.0,
                                                                              "rope_type": "default"}})
    assert cfg["rope_theta"] == 100000.0 and "rope_scaling" not in cfg and len(changes) == 1
    cfg, changes = mlc.mlc_config({"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}})
    assert cfg["rope_theta"] == 5e5 and cfg["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0}
    assert mlc.mlc_config({"rope_theta": 1e4}) == ({"rope_theta": 1e4}, [])  # transformers 4 style: unchanged


def test_predicted_chat_config_of_the_embedded_model(embedded_model_dir, tmp_path):
    staged = mlc.prepare_input(embedded_model_dir, tmp_path)
    expected = mlc.expected_config(tmp_path / "mlc-input", P(quantization="q4f16_1"))
    hf = json.loads((embedded_model_dir / "config.json").read_text())
    assert expected["model_type"] == "llama" and expected["quantization"] == "q4f16_1"
    assert expected["conv_template"] == {"name": "chatml"}
    assert expected["vocab_size"] == expected["active_vocab_size"] == hf["vocab_size"] == 49152
    assert expected["context_window_size"] == hf["max_position_embeddings"] == 8192
    assert expected["prefill_chunk_size"] == 8192 and expected["sliding_window_size"] == -1
    assert expected["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert (expected["bos_token_id"], expected["eos_token_id"], expected["pad_token_id"]) == (1, 2, 2)
    assert expected["temperature"] == 1.0 and expected["top_p"] == 1.0  # MLC's system defaults
    mc = expected["model_config"]
    assert (mc["hidden_size"], mc["num_hidden_layers"], mc["num_attention_heads"], mc["num_key_value_heads"],
            mc["head_dim"], mc["tie_word_embeddings"], mc["max_batch_size"]) == (576, 30, 9, 3, 64, True, 128)
    # the RoPE base MLC will use: the model's 100000 thanks to mlc-input/config.json ...
    assert mc["position_embedding_base"] == hf["rope_parameters"]["rope_theta"] == 100000.0
    assert staged["config_changes"] and "rope_theta = 100000.0" in staged["config_changes"][0]
    # ... where the model's own config.json (transformers 5: rope_parameters only) would give MLC's fallback
    raw = mlc.predict_chat_config(hf, None, P(), ["tokenizer.json"])
    assert raw["model_config"]["position_embedding_base"] == 10000


def test_predicted_window_overrides(embedded_model_dir):
    hf = json.loads((embedded_model_dir / "config.json").read_text())
    small = mlc.predict_chat_config(hf, None, P(context_window_size=2048), [])
    assert small["context_window_size"] == 2048 and small["prefill_chunk_size"] == 2048  # clipped to the window
    both = mlc.predict_chat_config(hf, None, P(context_window_size=4096, prefill_chunk_size=1024), [])
    assert (both["context_window_size"], both["prefill_chunk_size"]) == (4096, 1024)
    assert mlc.predict_chat_config(hf, None, P(), [])["active_vocab_size"] == 49152
    with pytest.raises(ValueError, match="context window"):
        mlc.predict_chat_config({k: v for k, v in hf.items() if k != "max_position_embeddings"}, None, P(), [])


def test_compare_chat_config():
    expected = {"quantization": "q4f16_1", "model_config": {"position_embedding_base": 100000.0, "head_dim": 64},
                "tokenizer_files": ["tokenizer.json"]}
    actual = {"quantization": "q4f16_1", "model_config": {"position_embedding_base": 100000, "head_dim": 64},
              "tokenizer_files": ["tokenizer.json"], "tokenizer_info": {}}
    assert mlc.compare_chat_config(expected, actual) == []
    actual["model_config"]["position_embedding_base"] = 10000
    del actual["tokenizer_files"]
    assert mlc.compare_chat_config(expected, actual) == [
        "model_config.position_embedding_base: predicted 100000.0, gen_config wrote 10000",
        "tokenizer_files: predicted ['tokenizer.json'], missing"]


# -------------------------------------------------------------------------------- unverified build, row

@pytest.fixture(scope="module")
def unverified_artifact(embedded_model_dir, tmp_path_factory):
    if MLC_IMPORTS:
        pytest.skip("mlc_llm imports here")
    # the same layout as the workflow: resources/{models,artifacts}/..., so the weight index is relative
    root = tmp_path_factory.mktemp("mlcwf") / "resources"
    out = root / "artifacts/smollm2-135m/mlc-q4f16_1"
    artifacts.build("mlc", embedded_model_dir, P(quantization="q4f16_1"), out)
    return out


@needs_no_mlc
def test_build_without_mlc_is_recorded_unverified(unverified_artifact, embedded_model_dir):
    out = unverified_artifact
    m = manifest.verify(out)  # a complete, hashed artifact directory
    assert m["status"] == "unverified" and m["method"] == "mlc" and m["library"] is None
    reason = m["unverified_reason"]
    # what the import really said, in which interpreter, when (no fixed sentence about the network)
    assert reason.startswith("mlc_llm is not installable here (import mlc_llm: ModuleNotFoundError: No module "
                             f"named 'mlc_llm'; in {sys.executable} at 20")
    assert "unreachable" not in reason and "empty placeholders" not in reason
    assert "no record of an attempt to install MLC's wheels in this env" in reason  # the driver's interpreter
    assert "commands.sh holds the exact commands" in reason
    assert m["input_model_hash"] == manifest.read(embedded_model_dir)["content_hash"]
    assert {"commands.sh", "mlc-chat-config.expected.json", "mlc-input/config.json",
            "mlc-input/model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja"} <= set(m["files"])
    assert "mlc-chat-config.json" not in m["files"] and not (out / "lib").exists()  # nothing MLC would make
    # the model directory is untouched (MLC itself would have written its weight index there)
    assert not manifest.problems(embedded_model_dir)
    assert not (embedded_model_dir / "model.safetensors.index.json").exists()


@needs_no_mlc
def test_commands_sh_and_weight_index(unverified_artifact, embedded_model_dir):
    out = unverified_artifact
    text = (out / "commands.sh").read_text()
    assert os.access(out / "commands.sh", os.X_OK)
    subprocess.run(["bash", "-n", str(out / "commands.sh")], check=True)
    assert [line for line in text.splitlines() if line.startswith("mlc_llm ")] == [
        'mlc_llm convert_weight "$OUT"/mlc-input --quantization q4f16_1 --device cpu -o "$OUT"',
        'mlc_llm gen_config "$OUT"/mlc-input --quantization q4f16_1 --conv-template chatml -o "$OUT"',
        'mlc_llm compile "$OUT"/mlc-chat-config.json --device cpu -o "$OUT"/lib/smollm2-135m-q4f16_1-cpu.so',
    ]
    index = json.loads((out / "mlc-input/model.safetensors.index.json").read_text())["weight_map"]
    files = {(out / "mlc-input" / p).resolve() for p in index.values()}
    assert files == {(embedded_model_dir / "model.safetensors").resolve()}
    assert all(not Path(p).is_absolute() for p in index.values())
    assert len(index) == 272  # every tensor of the 30-layer model (embedding tied: no lm_head)
    expected = json.loads((out / "mlc-chat-config.expected.json").read_text())
    assert expected["model_config"]["position_embedding_base"] == 100000.0


@needs_no_mlc
def test_engine_load_without_mlc_raises_unavailable(unverified_artifact):
    engine = engines.create("mlc")
    with pytest.raises(EngineUnavailable, match=r"^mlc_llm is not installable here \(import mlc_llm: "):
        engine.load(unverified_artifact, manifest.read(unverified_artifact), engines.resolved("mlc", {"device": "cpu"}))


@pytest.fixture(scope="module")
def unverified_run(unverified_artifact, embedded_model_dir, tmp_path_factory):
    """bench.run_job of the default config's mlc-cpu variant on the unverified artifact (4 new tokens)."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    scenario = {"kind": "latency", "prompts": str(REPO / "config/prompts/latency-9-prompts.jsonl"),
                "max_new_tokens": 4, "warmup": 1, "repeats": 1}
    spec = {"model": "smollm2-135m", "artifact": "mlc-q4f16_1", "variant_name": "mlc-cpu",
            "scenario_name": "latency", "model_dir": str(embedded_model_dir), "artifact_dir": str(unverified_artifact),
            "model_config": cfg["models"]["smollm2-135m"], "artifact_config": cfg["artifacts"]["mlc-q4f16_1"],
            "variant": {**cfg["variants"]["mlc-cpu"], "options": llmbench_config.resolved_options(cfg, "mlc-cpu")},
            "scenario": scenario}
    return bench.run_job(spec, tmp_path_factory.mktemp("runs") / "latency.parquet", log=lambda m: None)


@needs_no_mlc
def test_benchmark_job_writes_one_unverified_row(unverified_run, unverified_artifact):
    import pandas as pd

    rows = pd.read_parquet(unverified_run)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["status"] == "unverified" and not row["success"] and row["engine"] == "mlc"
    assert row["error"].startswith("artifact mlc-q4f16_1 is unverified: mlc_llm is not installable here")
    assert row["requested_output_tokens"] == 4 and len(row["output_ids"]) == 0
    assert row["artifact_hash"] == manifest.read(unverified_artifact)["content_hash"]


@needs_no_mlc
def test_unverified_row_reaches_the_tables(unverified_run, tmp_path):
    import pandas as pd

    from llmbench.analysis import tables

    tables.merge([unverified_run], tmp_path)
    line = pd.read_parquet(tmp_path / "latency.parquet").iloc[0]
    assert line["status"] == "unverified" and line["requests"] == 0 and "mlc_llm" in line["note"]
    assert "**mlc / mlc-cpu on mlc-q4f16_1: unverified.** artifact mlc-q4f16_1 is unverified: mlc_llm" in \
        (tmp_path / "latency.md").read_text()


# ----------------------------------------------------------------------------------------- env file

def test_install_attempt_is_recorded_and_quoted(tmp_path, monkeypatch):
    """The env's post-install helper records the failed wheel install (when, command, exit code, output), and
    the unverified reason quotes it, with the import's own error; here with a stand-in command that fails."""
    from llmbench.formats import mlc as fmt
    from llmbench.formats import mlc_wheels

    record = tmp_path / fmt.WHEELS_RECORD
    argv = [sys.executable, "-c", "import sys; print('ERROR: Could not find a version that satisfies mlc'); sys.exit(1)"]
    got = mlc_wheels.attempt(argv, record)
    assert got["exit_code"] == 1 and "Could not find a version" in got["output"] and got["when"].startswith("20")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    reason = fmt.not_installable(fmt.import_error() or "stand-in: mlc_llm imports here")
    assert f"the env's attempt to install MLC's wheels at {got['when']}" in reason
    assert "exited 1: ERROR: Could not find a version that satisfies mlc" in reason


def test_env_file_builds_without_mlc_and_tries_mlcs_wheels():
    spec = envs.parse(REPO / "envs/mlc.yaml")
    assert spec.python == "3.11" and ".." in spec.requirements and not spec.conda_only
    assert not [r for r in spec.requirements if "mlc" in r]  # nothing that cannot install here is required
    assert any(r.startswith("transformers==") for r in spec.requirements)  # the engine's HF tokenizer
    (post,) = spec.post_install
    words = shlex.split(post)
    # best effort and recorded: the helper always exits 0 and writes what the pip command produced
    assert words[:3] == ["python", "-m", "llmbench.formats.mlc_wheels"] and words[3:5] == ["pip", "install"]
    assert "https://mlc.ai/wheels" in words
    assert "mlc-llm-nightly-cpu==0.26.dev6" in words and "mlc-ai-nightly-cpu==0.26.dev246" in words
    assert len(envs.requirements_hash(spec)) == 64


# ------------------------------------------------------------- token ids, against a stand-in of MLCEngine

class _Out:  # data.SingleRequestStreamOutput's fields
    def __init__(self, ids, final=None):
        self.delta_token_ids, self.request_final_usage_json_str = ids, final


class _Delta:  # data.RequestStreamOutput
    def __init__(self, ids, final=None):
        self.ids, self.final = ids, final

    def unpack(self):
        return "req", [_Out(self.ids, self.final)]


class StandInMLCEngine:
    """Shaped like mlc_llm.serve.engine.MLCEngine's sync path (engine.py: _generate hands each chunk's
    RequestStreamOutput list to _request_stream_callback_impl, which detokenizes; the last one carries the
    request's usage JSON, metrics.cc AsUsageJSONStr). NOT MLC. ``counted``: the usage's completion_tokens
    (default: the ids the chunks carry)."""

    def __init__(self, chunks, counted=None):
        self.chunks, self.requests = chunks, []
        counted = sum(map(len, chunks)) if counted is None else counted
        engine = self

        class Completions:
            def create(self, **kw):
                engine.requests.append(kw)
                for ids in engine.chunks:
                    yield engine._request_stream_callback_impl([_Delta(ids)])
                usage = {"prompt_tokens": len(kw["prompt"]), "completion_tokens": counted}
                engine._request_stream_callback_impl([_Delta([], final=json.dumps(usage))])

        self.completions = Completions()

    def _request_stream_callback_impl(self, delta_outputs):
        return [f"text{d.ids}" for d in delta_outputs]


def _stand_in_adapter(tmp_path, chunks, counted=None):
    adapter = engines.create("mlc")
    adapter.engine = engines.module("mlc").token_id_engine(StandInMLCEngine)(chunks, counted)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    adapter.tokenizer = type("Tok", (), {"name_or_path": str(tmp_path)})()
    return adapter


def test_generate_passes_token_ids_as_they_arrive(tmp_path):
    adapter = _stand_in_adapter(tmp_path, [[5], [7], [9, 11]])
    seen = []
    gen = adapter.generate([1, 2, 3], 4, seen.append)
    assert gen.ids == seen == [5, 7, 9, 11] and gen.ids is not adapter.engine.output_ids
    (req,) = adapter.engine.requests
    assert req == {"prompt": [1, 2, 3], "max_tokens": 4, "temperature": 0.0, "stream": True,
                   "logit_bias": {2: -100.0},  # generation_config's EOS: ignore_eos alone does not mask it
                   "extra_body": {"debug_config": {"ignore_eos": True}}}
    assert gen.engine_metrics == {"multi_token_chunks": 1, "completion_tokens": 4}  # [9, 11] arrived together
    assert adapter.engine.token_sink is None  # detached after the request


def test_generate_fails_when_mlcs_own_count_differs_from_its_ids(tmp_path):
    """MLC's usage (its own completion_tokens) says 5, its stream outputs carried 4: the request fails rather
    than passing the ids on as if complete."""
    adapter = _stand_in_adapter(tmp_path, [[5], [7], [9, 11]], counted=5)
    with pytest.raises(RuntimeError, match="usage says 5 completion tokens, its stream outputs carried 4"):
        adapter.generate([1, 2, 3], 5, lambda t: None)


def test_token_id_engine_needs_mlcs_callback():
    with pytest.raises(RuntimeError, match="no _request_stream_callback_impl"):
        engines.module("mlc").token_id_engine(object)


# ---------------------------------------------- build()'s real path, against a stand-in mlc_llm (NOT MLC)

STAND_IN_MAIN = '''
import json, os, sys
from pathlib import Path
argv = sys.argv[1:]
with open(os.environ["STAND_IN_LOG"], "a") as f:
    f.write(json.dumps(argv) + "\\n")
out = Path(argv[argv.index("-o") + 1])
if argv[0] == "convert_weight":
    (out / "tensor-cache.json").write_text("{}")
elif argv[0] == "gen_config":
    cfg = json.loads((Path(argv[1]) / "config.json").read_text())
    (out / "mlc-chat-config.json").write_text(json.dumps({
        "model_type": "llama", "quantization": argv[argv.index("--quantization") + 1],
        "model_config": {"position_embedding_base": cfg.get("rope_theta", 10000)},
        "context_window_size": 1234}))
elif argv[0] == "compile":
    out.write_bytes(b"not a library")
'''


@pytest.fixture
def stand_in_mlc(tmp_path, monkeypatch):
    """A package named mlc_llm that only records its argv and writes placeholder files. It is not MLC: it checks
    build()'s orchestration (what is run, in which order, what the manifest records), never MLC's behaviour."""
    pkg = tmp_path / "stand_in" / "mlc_llm"
    (pkg / "interface").mkdir(parents=True)
    (pkg / "quantization").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(STAND_IN_MAIN)
    (pkg / "interface/__init__.py").write_text("")
    (pkg / "interface/gen_config.py").write_text("CONV_TEMPLATES = {'chatml', 'llama-3'}\n")
    (pkg / "quantization/__init__.py").write_text("QUANTIZATION = {'q4f16_1': None, 'q0f32': None}\n")
    monkeypatch.syspath_prepend(str(pkg.parent))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg.parent), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("STAND_IN_LOG", str(tmp_path / "argv.log"))
    import sys
    for name in [m for m in sys.modules if m == "mlc_llm" or m.startswith("mlc_llm.")]:
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path / "argv.log"
    for name in [m for m in sys.modules if m == "mlc_llm" or m.startswith("mlc_llm.")]:
        del sys.modules[name]


def test_build_runs_the_commands_when_mlc_llm_imports(stand_in_mlc, embedded_model_dir, tmp_path):
    out = tmp_path / "resources/artifacts/smollm2-135m/mlc-q4f16_1"
    out.mkdir(parents=True)
    m = mlc.build(embedded_model_dir, manifest.read(embedded_model_dir), P(quantization="q4f16_1"), out)
    ran = [json.loads(line) for line in stand_in_mlc.read_text().splitlines()]
    assert [["mlc_llm", *a] for a in ran] == mlc.commands(out / "mlc-input", out, P(), model_name=embedded_model_dir.name)
    assert m["library"] == "mlc_llm" and m["model_lib"] == "lib/smollm2-135m-q4f16_1-cpu.so"
    assert (out / m["model_lib"]).exists() and m["run_as"].endswith(" -m mlc_llm")
    assert m["commands"][2][-1] == "<artifact dir>/lib/smollm2-135m-q4f16_1-cpu.so"
    # what gen_config wrote is compared with the prediction, key by key
    assert "context_window_size: predicted 8192, gen_config wrote 1234" in m["expected_config_differences"]
    assert not [d for d in m["expected_config_differences"] if d.startswith("model_config.position_embedding_base")]
    # the installed library's lists are checked too (this stand-in knows two templates)
    with pytest.raises(ValueError, match="conv_template = 'gpt2'; allowed values are chatml, llama-3$"):
        mlc.build(embedded_model_dir, {}, P(conv_template="gpt2"), tmp_path / "other")
    assert not (tmp_path / "other").exists()  # checked before anything is written
