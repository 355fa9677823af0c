"""Bad config stops the run before any job, naming the key, the value and what is allowed."""

import copy
import os

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake, write_yaml

DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def plan_with(workdir, mutate):
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    write_yaml(workdir / "config/config.yaml", cfg)
    proc = snakemake(workdir, "-n", check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_default_config_plans(workdir):
    rc, out = plan_with(workdir, lambda c: None)
    assert rc == 0, out
    assert "benchmark" in out and "fetch_model" in out


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["variants"]["hf-sdpa"].update(engine="nosuch"),
         ["variants.hf-sdpa.engine = 'nosuch'", "allowed engines are", "hf"]),
        (lambda c: c["variants"]["hf-sdpa"]["options"].update(attn_implementation="flash"),
         ["variants.hf-sdpa.options.attn_implementation = 'flash'", "eager, sdpa, flash_attention_2"]),
        (lambda c: c["variants"]["hf-sdpa"]["options"].update(dtpye="float16"),
         ["variants.hf-sdpa.options.dtpye: unknown option", "allowed options are", "dtype"]),
        (lambda c: c["variants"]["hf-sdpa"]["options"].update(num_threads="two"),
         ["variants.hf-sdpa.options.num_threads = 'two'", "expected int or null"]),
        (lambda c: c["artifacts"]["q4_1-dequant-fp32"].update(method="gptqq"),
         ["artifacts.q4_1-dequant-fp32.method = 'gptqq'", "allowed methods are", "reference"]),
        (lambda c: c["artifacts"]["q4_1-dequant-fp32"]["params"].update(dtype="fp8"),
         ["artifacts.q4_1-dequant-fp32.params.dtype = 'fp8'", "float32, float16, bfloat16"]),
        (lambda c: c["benchmarks"][0]["variants"].append("hf-typo"),
         ["benchmarks[0].variants: 'hf-typo' is not defined", "hf-sdpa"]),
        (lambda c: c["models"]["smollm2-135m"].update(source="ftp:somewhere"),
         ["ftp:somewhere", "pypi|hf|path|synthetic"]),
        (lambda c: c["models"]["smollm2-135m"].update(source="synthetic:llama-9"),
         ["synthetic presets are", "llama-2-7b"]),
        (lambda c: c["models"]["smollm2-135m"].update(source="hf:org/model"),
         ["pin a revision"]),
        (lambda c: c["scenarios"]["latency"].update(max_new_tokens=0),
         ["max_new_tokens", "0", "minimum"]),
        (lambda c: c["scenarios"]["latency"].update(repeats="three"),
         ["repeats", "three", "integer"]),
        (lambda c: c["scenarios"]["latency"].update(prompts="config/prompts/missing.jsonl"),
         ["scenarios.latency.prompts = 'config/prompts/missing.jsonl': file not found"]),
        (lambda c: c["scenarios"]["latency"].update(max_tokens=10),
         ["max_tokens", "Additional properties"]),
        (lambda c: c.pop("benchmarks"), ["benchmarks", "required"]),
        (lambda c: c["benchmarks"].append({"models": ["smollm2-135m"], "artifacts": ["ct2-int8"],
                                           "variants": ["llamacpp-cpu"], "scenarios": ["latency"]}),
         ["variant 'llamacpp-cpu' (engine llamacpp) cannot load artifact 'ct2-int8': its format is ct2 (method ct2), "
          "engine llamacpp accepts gguf"]),
        (lambda c: c.setdefault("software_envs", {}).update(wheelhouse="wheelhouses"),
         ["software_envs.wheelhouse = 'wheelhouses': no such folder", "python -m llmbench wheelhouse"]),
    ],
    ids=["engine", "option-value", "option-name", "option-type", "method", "artifact-param", "undefined-ref", "scheme",
         "preset", "hf-revision", "number", "type", "prompts-file", "typo-key", "missing-key", "artifact-format",
         "offline-envs"],
)
def test_bad_config_stops_before_any_job(workdir, mutate, expected):
    rc, out = plan_with(workdir, mutate)
    assert rc != 0
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out[-3000:]}"
    assert "Job stats" not in out and "rule fetch_model" not in out


def test_hf_source_fails_fast_on_an_unreachable_hub(tmp_path):
    """The hub download fails for one known reason everywhere: HF_ENDPOINT is a local port nothing listens on
    (connection refused), whether or not this machine could reach huggingface.co. In a subprocess, because
    huggingface_hub reads HF_ENDPOINT when it is first imported."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:  # a free local port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from llmbench.models import sources\n"
            "try:\n"
            "    sources.fetch('hf:HuggingFaceTB/SmolLM2-135M-Instruct@main', __import__('pathlib').Path(%r), "
            "{'timeout_s': 5})\n"
            "except sources.SourceError as e:\n"
            "    print('SourceError:', e)\n" % str(tmp_path / "m"))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "workflow"), os.environ.get("PYTHONPATH")])))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "SourceError: hf:HuggingFaceTB/SmolLM2-135M-Instruct@main: could not download " \
        "from the Hugging Face hub" in proc.stdout, out[-3000:]
    assert "Connection refused" in proc.stdout, out[-3000:]  # the known reason, not a network of unknown state
    assert time.perf_counter() - t < 120


def test_a_scenario_name_with_a_dot_is_refused_naming_the_key():
    """A scenario's name is part of file names (<scenario>.parquet beside <scenario>.quality.parquet): a dot would
    make one job's rows look like another scenario's quality table, so planning refuses it by name."""
    from llmbench.planning import config as llmbench_config

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["scenarios"]["latency.long"] = cfg["scenarios"].pop("latency")
    for b in cfg["benchmarks"]:
        b["scenarios"] = ["latency.long"]
    found = llmbench_config.problems(cfg, REPO)
    assert any(p.startswith("scenarios.latency.long:") and "'.'" in p for p in found), found
