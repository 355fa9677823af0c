"""Launched-server systems as data (serving/launch.py, serving/servers/*.yaml): the command each entry runs for
given options and artifact formats, TabbyAPI's config.yml, the exact-length request fields, the unverified
reason when a launcher is missing, the install step's record, the planner refusing a format a system does not
load, and the build plans of the EXL2 and TensorRT-LLM engine methods when their tools are absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from llmbench import artifacts, engines
from llmbench.planning import config as config_check
from llmbench.serving import install, launch

SYSTEMS = ("deepspeed-mii", "fastchat", "lmdeploy", "scalellm", "sglang", "tabbyapi", "text-generation-webui", "tgi",
           "trtllm", "xinference")


def _cmd(name: str, tmp_path: Path, fmt: str | None = None, **options):
    art = tmp_path / "art" / "smol-exl2"
    art.mkdir(parents=True, exist_ok=True)
    return engines.module(name).server(art, {}, engines.resolved(name, options), "127.0.0.1", 8123,
                                       workdir=tmp_path / "wd", artifact_format=fmt), art.resolve()


def test_every_seed_system_is_an_engine_with_an_env_file():
    from conftest import REPO

    for name in SYSTEMS:
        assert name in engines.names() and engines.servable(name)
        assert (REPO / "envs" / f"{engines.env(name)}.yaml").exists(), name
        assert engines.adapter_class(name) is None  # serving only


def test_lmdeploy_runs_its_documented_api_server_with_the_given_options(tmp_path):
    cmd, art = _cmd("lmdeploy", tmp_path, backend="pytorch", tp=2, model_format="awq", session_len=4096)
    assert cmd.argv == ["lmdeploy", "serve", "api_server", str(art), "--server-name", "127.0.0.1",
                        "--server-port", "8123", "--model-name", "llmbench", "--backend", "pytorch", "--tp", "2",
                        "--dtype", "auto", "--model-format", "awq", "--session-len", "4096"]
    assert cmd.model_name == "llmbench" and cmd.metrics_path == "/metrics" and cmd.metrics_prefixes == ("lmdeploy:",)
    assert engines.placement("lmdeploy", {"tp": 2}).gpus == 2
    default, _ = _cmd("lmdeploy", tmp_path)
    assert "--model-format" not in default.argv and "--enable-prefix-caching" not in default.argv


def test_trtllm_serves_an_hf_dir_with_pytorch_and_an_engine_with_tensorrt_and_the_tokenizer(tmp_path):
    hf, art = _cmd("trtllm", tmp_path, "hf", tp_size=2, max_batch_size=8)
    assert hf.argv[:2] == ["trtllm-serve", str(art)]
    assert hf.argv[-2:] == ["--backend", "pytorch"] and ["--tp_size", "2"] == hf.argv[6:8]
    assert "--max_seq_len" not in hf.argv and hf.argv[hf.argv.index("--max_batch_size") + 1] == "8"
    eng, art = _cmd("trtllm", tmp_path, "trtllm-engine", max_seq_len=2048)
    assert eng.argv[1] == f"{art}/engine"
    assert eng.argv[-6:] == ["--backend", "tensorrt", "--tokenizer", str(art), "--max_seq_len", "2048"]


def test_tabbyapi_writes_its_config_yml_and_points_main_py_at_it(tmp_path):
    cmd, art = _cmd("tabbyapi", tmp_path, "exl2", cache_mode="Q8", max_seq_len=2048)
    cfg = tmp_path / "wd" / "config.yml"
    assert cmd.argv == [sys.executable, f"{sys.prefix}/tabbyAPI/main.py", "--config", str(cfg.resolve())]
    assert cmd.cwd == f"{sys.prefix}/tabbyAPI"
    written = yaml.safe_load(cfg.read_text())
    assert written["network"] == {"host": "127.0.0.1", "port": 8123, "disable_auth": True}
    assert written["model"] == {"model_dir": str(art.parent), "model_name": "smol-exl2", "backend": "exllamav2",
                                "max_seq_len": 2048, "cache_mode": "Q8", "max_batch_size": None}
    assert cmd.model_name == "smol-exl2" and cmd.facts["config"] == cfg.read_text()


def test_tgi_and_sglang_keep_their_documented_launches(tmp_path):
    tgi, art = _cmd("tgi", tmp_path, dtype="float16", num_shard=2)
    assert tgi.argv == ["text-generation-launcher", "--model-id", str(art), "--hostname", "127.0.0.1", "--port",
                        "8123", "--num-shard", "2", "--max-total-tokens", "2048", "--dtype", "float16"]
    sg, _ = _cmd("sglang", tmp_path, disable_radix_cache=False, mem_fraction_static=0.8)
    assert "--disable-radix-cache" not in sg.argv and sg.argv[-2:] == ["--mem-fraction-static", "0.8"]


def test_fastchat_starts_controller_worker_and_api_server_in_one_process_group(tmp_path):
    cmd, art = _cmd("fastchat", tmp_path, num_gpus=2, dtype="bfloat16")
    assert cmd.argv[:2] == ["bash", "-c"] and len(cmd.argv) == 3
    script = " ".join(cmd.argv[2].split())
    py = sys.executable
    assert f"{py} -m fastchat.serve.controller --host 127.0.0.1 --port 21001 &" in script
    assert (f"{py} -m fastchat.serve.model_worker --host 127.0.0.1 --port 21002 --worker-address http://127.0.0.1:21002 "
            f"--controller-address http://127.0.0.1:21001 --model-path {art} --model-names llmbench --device cuda "
            f"--num-gpus 2 --dtype bfloat16 &") in script
    assert script.endswith(f"exec {py} -m fastchat.serve.openai_api_server --host 127.0.0.1 --port 8123 "
                           f"--controller-address http://127.0.0.1:21001")
    assert engines.placement("fastchat", {"num_gpus": 2}).gpus == 2


def test_xinference_serves_then_launches_the_artifact_with_its_transformers_engine(tmp_path):
    cmd, art = _cmd("xinference", tmp_path, xinference_model="llama-2-chat")
    script = " ".join(cmd.argv[2].split())
    assert script.startswith("xinference-local -H 127.0.0.1 -p 8123 &")
    assert (f"xinference launch -e http://127.0.0.1:8123 -n llama-2-chat -u llmbench -en transformers -t LLM "
            f"-mp {art} --n-gpu 1 || exit 1; wait") in script
    assert cmd.ready_path == "/v1/models/llmbench"  # ready once the model is launched, not when the server is up


def test_text_generation_webui_loads_the_artifact_by_name_from_its_parent_dir(tmp_path):
    cmd, art = _cmd("text-generation-webui", tmp_path, "exl2", loader="ExLlamav2_HF")
    assert cmd.argv == [sys.executable, f"{sys.prefix}/text-generation-webui/server.py", "--model-dir", str(art.parent),
                        "--model", art.name, "--loader", "ExLlamav2_HF", "--api", "--nowebui", "--listen-host",
                        "127.0.0.1", "--api-port", "8123"]
    with pytest.raises(ValueError, match="loader"):
        engines.resolved("text-generation-webui", {"loader": "vllm"})


def test_exact_length_fields_are_each_systems_documented_ones():
    m = lambda name: engines.module(name).request_options(37, [2, 0])  # noqa: E731
    assert m("sglang") == {"ignore_eos": True, "min_tokens": 37}
    assert m("trtllm") == {"ignore_eos": True, "min_tokens": 37}
    assert m("lmdeploy") == {"ignore_eos": True}
    assert m("tabbyapi") == {"ban_eos_token": True, "min_tokens": 37}
    assert m("scalellm") == {"ignore_eos": True}
    assert m("deepspeed-mii") == {"min_tokens": 37}
    assert m("tgi") == {}
    assert m("fastchat") == {} and m("xinference") == {}
    assert m("text-generation-webui") == {"ban_eos_token": True, "min_tokens": 37}
    assert "early EOS fails the count check" in launch.length_text(launch.entry("tgi"))


def test_a_missing_launcher_is_the_unverified_reason_with_the_install_record(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    reason = engines.module("lmdeploy").launcher_problem({})
    assert reason.startswith("lmdeploy is not on PATH (nor in this env's bin/)")
    assert "no install record in this env" in reason
    # the entry's dated text is labelled as a static note, apart from what this run saw
    seen, static = reason.split(" [Static note, written with this entry, not observed in this run: ")
    assert "lmdeploy-0.18.0-cp311" in static and "lmdeploy-0.18.0-cp311" not in seen
    install.record_path("lmdeploy").write_text(json.dumps(
        {"when": "T", "command": "pip install lmdeploy==0.18.0", "skipped": "no CUDA GPU here"}))
    assert "skipped `pip install lmdeploy==0.18.0`: no CUDA GPU here" in engines.module("lmdeploy").launcher_problem({})
    assert "main.py does not exist" in engines.module("tabbyapi").launcher_problem({})
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "lmdeploy").write_text("")
    assert engines.module("lmdeploy").launcher_problem({}) == "no CUDA GPU here (nvidia-smi is not on PATH)"


def test_the_install_step_skips_without_a_gpu_and_records_a_command_it_ran(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert install.main(["lmdeploy", "--needs-cuda", "--", "pip", "install", "lmdeploy==0.18.0"]) == 0
    rec = json.loads(install.record_path("lmdeploy").read_text())
    assert rec["command"] == "pip install lmdeploy==0.18.0" and "nvidia-smi is not on PATH" in rec["skipped"]
    assert "CUDA builds" not in rec["skipped"]   # not observed: the env file's --needs-cuda marker is what it says
    assert install.main(["x", "--", "echo hello && exit 3"]) == 0  # never fails the env build
    rec = json.loads(install.record_path("x").read_text())
    assert rec["exit_code"] == 3 and rec["output"] == "hello"
    assert "`echo hello && exit 3`, exited 3: hello" in install.attempt("x")


def _cfg(method: str, engine: str) -> dict:
    sc = {"kind": "serving", "max_new_tokens": 4, "prompts": "config/prompts/latency-9-prompts.jsonl"}
    return {"models": {"m": {"source": "synthetic:llama-2-7b"}},
            "artifacts": {"a": {"method": method, "params": {}}}, "variants": {"v": {"engine": engine}},
            "scenarios": {"s": sc},
            "benchmarks": [{"models": ["m"], "artifacts": ["a"], "variants": ["v"], "scenarios": ["s"]}]}


def test_the_planner_refuses_a_format_a_system_does_not_load():
    out = config_check._benchmark_problems(_cfg("reference", "tabbyapi"))
    assert out == ["benchmarks[0]: variant 'v' (engine tabbyapi) cannot load artifact 'a': its format is hf "
                   "(method reference), engine tabbyapi accepts exl2"]
    out = config_check._benchmark_problems(_cfg("exl2", "lmdeploy"))
    assert out and "its format is exl2 (method exl2), engine lmdeploy accepts hf" in out[0]
    assert config_check._benchmark_problems(_cfg("trtllm_engine", "trtllm")) == []
    assert config_check._benchmark_problems(_cfg("reference", "trtllm")) == []
    bad = engines.resolve("lmdeploy", {"backend": "vllm"}, where="variants.v.options")[1]
    assert bad == ["variants.v.options.backend = 'vllm': allowed values are turbomind, pytorch"]


def test_a_launch_for_a_format_the_entry_lacks_is_refused(tmp_path):
    with pytest.raises(ValueError, match="artifact format 'gguf' is not accepted; allowed formats are hf, trtllm-engine"):
        _cmd("trtllm", tmp_path, "gguf")


def test_an_entry_with_an_unknown_placeholder_is_refused(monkeypatch, tmp_path):
    (tmp_path / "servers").mkdir()
    good = yaml.safe_load((launch._dir() / "tgi.yaml").read_text())
    good["argv"].append("{prot}")
    (tmp_path / "servers" / "bad.yaml").write_text(yaml.safe_dump(good))
    monkeypatch.setattr(launch, "_dir", lambda: tmp_path / "servers")
    launch.entry.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"unknown placeholders \['prot'\]"):
            launch.entry("bad")
    finally:
        launch.entry.cache_clear()


@pytest.mark.parametrize("method,module,files", [("exl2", "exllamav2", ["exllamav2.conversion.convert_exl2"]),
                                                  ("trtllm_engine", "tensorrt_llm", ["trtllm-build"])])
def test_a_build_whose_tool_is_absent_is_an_unverified_plan(embedded_model_dir, tmp_path, method, module, files):
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    from llmbench.artifacts import ArtifactUnavailable

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArtifactUnavailable, match=f"{module} does not import in this env .*No module named"):
        artifacts.module(method).build(embedded_model_dir, {}, artifacts.resolved(method), out)
    script = (out / "commands.sh").read_text()
    assert all(f in script for f in files) and '"$OUT"' in script and str(out) not in script
    assert (out / "tokenizer.json").exists()
    assert not list(out.glob("*.safetensors")) and not (out / "engine").exists()  # nothing the tool makes


def test_exl2_and_trtllm_commands_carry_their_params(tmp_path):
    exl2 = artifacts.module("exl2").commands(Path("/m"), Path("/o"), artifacts.resolved("exl2", {"bits": 3.5}))
    assert exl2 == [["python", "-m", "exllamav2.conversion.convert_exl2", "-i", "/m", "-o", "/o/work", "-cf", "/o",
                     "-b", "3.5", "-hb", "6", "-r", "100", "-mr", "16", "-l", "2048", "-ml", "2048"]]
    trt = artifacts.module("trtllm_engine").commands(Path("/m"), Path("/o"),
                                                     artifacts.resolved("trtllm_engine", {"tp_size": 2}))
    assert trt[0][-4:] == ["/m", "/o/checkpoint", "float16", "2"]
    assert trt[1] == ["trtllm-build", "--checkpoint_dir", "/o/checkpoint", "--output_dir", "/o/engine",
                      "--max_batch_size", "64", "--max_seq_len", "4096", "--gemm_plugin", "auto"]
    assert artifacts.resolve("exl2", {"bits": 9.0}, where="artifacts.e.params")[1] == [
        "artifacts.e.params.bits = 9.0: expected 2.0 … 8.0 bits per weight"]
