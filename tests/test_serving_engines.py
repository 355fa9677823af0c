"""Serving-only engines (engines/remote.py, the launched-server entries tgi and sglang) and the count rules of a served request
(serving/job.py): the commands TGI and SGLang would run, why they cannot run here, a remote endpoint that fails
fast with what is wrong (and never shows its token), and the config errors a user meets."""

from __future__ import annotations

import time

import pytest

from conftest import start_fake_server
from llmbench import engines
from llmbench.planning import config as config_check
from llmbench.serving import client
from llmbench.serving.job import judge
from llmbench.core.server import RemoteEndpoint, ServerNotReady
from llmbench.serving.server import free_port



def test_tgi_and_sglang_launch_their_documented_servers_on_the_artifact(tmp_path):
    tgi = engines.module("tgi").server(tmp_path, {}, engines.resolved("tgi", {"dtype": "bfloat16"}), "127.0.0.1", 8123)
    assert tgi.argv[:3] == ["text-generation-launcher", "--model-id", str(tmp_path.resolve())]
    assert ["--port", "8123"] == tgi.argv[tgi.argv.index("--port"):][:2] and "bfloat16" in tgi.argv
    sg = engines.module("sglang").server(tmp_path, {}, engines.resolved("sglang", {}), "127.0.0.1", 8124)
    assert sg.argv[1:3] == ["-m", "sglang.launch_server"] and "--disable-radix-cache" in sg.argv
    assert engines.module("sglang").request_options(7, [2]) == {"ignore_eos": True, "min_tokens": 7}
    assert engines.placement("tgi", {}).gpus == 1 and engines.placement("sglang", {"tp_size": 2}).gpus == 2


def test_a_missing_launcher_is_the_reason_of_an_unverified_row(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "text-generation-launcher is not on PATH" in engines.module("tgi").launcher_problem({})
    reason = engines.module("sglang").launcher_problem({})  # not installed in the test env, or no GPU here
    assert "sglang is not installed" in reason or "no CUDA GPU" in reason


def _endpoint(url, model="llmbench", token_env=None, monkeypatch=None):
    opts = engines.resolved("remote", {"url": url, "model": model, "token_env": token_env})
    return engines.module("remote").endpoint(opts)


def test_an_unreachable_remote_endpoint_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t = time.monotonic()
    with pytest.raises(ServerNotReady, match=f"remote endpoint {url} .* is unreachable"):
        with _endpoint(url):
            pass
    assert time.monotonic() - t < 5


def test_a_wrong_url_a_wrong_model_and_a_rejected_token_say_what_is_wrong(monkeypatch, tmp_path):
    import os
    port = free_port()
    monkeypatch.setenv("LLMBENCH_TEST_TOKEN", "planted-secret-123")
    proc = start_fake_server(port, "--model", "served-model", "--token-env", "LLMBENCH_TEST_TOKEN", env=dict(os.environ))
    try:
        base = f"http://127.0.0.1:{port}"
        with pytest.raises(ServerNotReady, match="answered HTTP 404; url must be the root"):
            with _endpoint(base + "/wrong", model="served-model", token_env="LLMBENCH_TEST_TOKEN"):
                pass
        with pytest.raises(ServerNotReady, match=r"serves \['served-model'\], not model = 'other'"):
            with _endpoint(base, model="other", token_env="LLMBENCH_TEST_TOKEN"):
                pass
        monkeypatch.setenv("WRONG_TOKEN", "not-the-token")
        with pytest.raises(ServerNotReady, match="rejected the credentials .*token_env = 'WRONG_TOKEN'") as e:
            with _endpoint(base, model="served-model", token_env="WRONG_TOKEN"):
                pass
        assert "not-the-token" not in str(e.value)
        with _endpoint(base, model="served-model", token_env="LLMBENCH_TEST_TOKEN") as ep:
            assert ep.alive() and ep.ready_s is not None
            assert "planted-secret-123" not in repr(ep.facts)
        monkeypatch.delenv("LLMBENCH_TEST_TOKEN")
        with pytest.raises(ValueError, match="token_env = 'LLMBENCH_TEST_TOKEN': that environment variable is not set"):
            _endpoint(base, model="served-model", token_env="LLMBENCH_TEST_TOKEN")
    finally:
        proc.kill()
        proc.wait()


def test_remote_options_are_checked_naming_the_key():
    problems = engines.resolve("remote", {"url": "localhost:8000/v1", "model": "m"}, where="variants.r.options")[1]
    assert problems == ["variants.r.options.url = 'localhost:8000/v1': expected http(s)://host:port, without /v1"]
    problems = engines.resolve("remote", {"url": "http://h:1", "model": "m", "length_options": "tgi"})[1]
    assert "allowed values are vllm, llamacpp, none" in problems[0]


def _cfg(scenario_kind: str, engine: str) -> dict:
    options = {"url": "http://127.0.0.1:9", "model": "m"} if engine == "remote" else {}
    sc = {"kind": scenario_kind, "max_new_tokens": 4, "prompts": "config/prompts/latency-9-prompts.jsonl"}
    return {"models": {"m": {"source": "synthetic:llama-2-7b"}},
            "artifacts": {"a": {"method": "reference", "params": {}}},
            "variants": {"v": {"engine": engine, "options": options}},
            "scenarios": {"s": sc},
            "benchmarks": [{"models": ["m"], "artifacts": ["a"], "variants": ["v"], "scenarios": ["s"]}]}


def test_serving_only_engines_are_refused_in_latency_scenarios_and_in_process_ones_in_serving():
    out = config_check._serving_problems(_cfg("latency", "remote"))
    assert out == ["benchmarks[0]: variant 'v' (engine remote) only serves, so it cannot run the latency scenario "
                   "'s'; give it a serving scenario (kind: serving)"]
    out = config_check._serving_problems(_cfg("serving", "ct2"))
    assert len(out) == 1 and ("has no server; engines with one: deepspeed-mii, fastchat, llamacpp, lmdeploy, remote, "
                              "scalellm, sglang, tabbyapi, text-generation-webui, tgi, trtllm, vllm, xinference") in out[0]
    assert config_check._serving_problems(_cfg("serving", "remote")) == []


def _rec(**kw) -> client.RequestRecord:
    base = dict(index=0, warmup=False, input_tokens=5, max_tokens=4, scheduled_s=0.0, send_s=0.0, queue_s=0.0,
                chunk_tokens=[1, 1, 1, 1], text=" a b c d")
    return client.RequestRecord(**{**base, **kw})


def test_the_servers_count_decides_and_other_disagreements_flag():
    assert judge(_rec(usage_completion_tokens=4, usage_prompt_tokens=5), 4) == (True, "", "")
    ok, err, _ = judge(_rec(usage_completion_tokens=3), 3)
    assert not ok and err == "the server returned 3 new tokens (usage), 4 were requested"
    # no usage (llama_cpp.server): finish_reason length says it stopped at max_tokens, merged chunks only flag
    ok, err, flag = judge(_rec(chunk_tokens=[1, 1, 1], finish_reason="length"), 5)
    assert ok and "no usage from the server: it finished with reason length, in 3 chunks" in flag
    assert "re-encodes to 5 tokens" in flag
    ok, err, _ = judge(_rec(chunk_tokens=[1, 1], finish_reason="stop"), 2)
    assert not ok and "the server returned 2 new tokens (2 chunks, finish_reason stop)" in err


def test_random_prompts_encode_to_exactly_the_asked_length(embedded_model_dir):
    import numpy as np
    from transformers import AutoTokenizer

    from llmbench.serving import workload

    pt = workload.PromptText(AutoTokenizer.from_pretrained(embedded_model_dir), "completions")
    rng = np.random.default_rng(0)
    for n in (1, 17, 64, 300):
        text = pt.random_text(rng, n)
        assert len(pt.tok(text, add_special_tokens=False)["input_ids"]) == n
