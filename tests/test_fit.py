"""The fit check at planning (planning/fit.py): GPU jobs whose weights, KV cache and headroom cannot fit their
GPUs stop the plan with the numbers; the Llama-2 7B / 13B / 70B shapes checked on paper."""

from __future__ import annotations

import copy

import pytest
import yaml

from llmbench.planning import config as llmbench_config
from llmbench.planning import fit

from conftest import REPO


def _gpu_config(preset: str, dtype: str = "float16", tp: int | None = None, gpu: str = "NVIDIA H100 80GB HBM3",
                hf_tp: int | None = None) -> dict:
    cfg = yaml.safe_load((REPO / "config/gpu.yaml").read_text())
    cfg["models"] = {"m": {"source": f"synthetic:{preset}", "seed": 0, "tokenizer_from": "resources/models/smollm2-135m"}}
    cfg["artifacts"] = {"ref": {"method": "reference", "params": {"dtype": dtype}}}
    options = {"device": "cuda", "dtype": dtype}
    engine = "hf"
    if tp:
        engine, options = "vllm", {"device": "cuda", "dtype": dtype, "tensor_parallel_size": tp}
    if hf_tp:
        options["tp_size"] = hf_tp
    cfg["variants"] = {"v": {"engine": engine, "options": options}}
    cfg["benchmarks"] = [{"models": ["m"], "artifacts": ["ref"], "variants": ["v"], "scenarios": ["latency"]}]
    cfg.pop("quality", None)
    cfg["hardware"] = {"gpu": gpu}
    return cfg


@pytest.mark.parametrize("preset, fits", [("llama-2-7b", True), ("llama-2-13b", True), ("llama-2-70b", False)])
def test_llama2_fp16_on_one_80gb_gpu(preset, fits):
    found = fit.problems(_gpu_config(preset), REPO)
    assert (found == []) is fits, found


def test_the_70b_refusal_gives_the_numbers():
    (msg,) = fit.problems(_gpu_config("llama-2-70b"), REPO)
    # 68,975,329,280 parameters (the matmuls and the untied embedding; its 1,318,912 norm weights left out) x 2 bytes
    assert "weights 128.5 GiB" in msg and "74.5 GiB (NVIDIA H100 80GB HBM3, 80 GB (datasheet))" in msg
    assert "models.m / artifacts.ref / variants.v / scenarios.latency" in msg and "at least 2 GPUs" in msg


def test_tensor_parallel_over_two_gpus_fits_the_70b():
    assert fit.problems(_gpu_config("llama-2-70b", tp=2), REPO) == []
    n = fit.need(_gpu_config("llama-2-70b", tp=2), "m", "ref", "v", "latency", REPO)
    assert n.gpus == 2 and n.batch == 1 and n.context > 200   # the longest prompt's characters + 200 new tokens


def test_13b_fp16_does_not_fit_a_24gb_l4_but_4bit_7b_does():
    assert fit.problems(_gpu_config("llama-2-13b", gpu="NVIDIA L4"), REPO)
    cfg = _gpu_config("llama-2-7b", gpu="NVIDIA L4")
    cfg["artifacts"]["ref"] = {"method": "gptq", "params": {"bits": 4, "group_size": 128}}
    n = fit.need(cfg, "m", "ref", "v", "latency", REPO)
    assert n.weights == pytest.approx(6_738_415_616 * (0.5 + 2 / 128), rel=0.001)
    assert fit.problems(cfg, REPO) == []


def test_kv_cache_of_a_serving_sweep_counts_its_concurrency():
    cfg = _gpu_config("llama-2-7b")
    cfg["scenarios"]["serve"] = {"kind": "serving", "dataset": "random", "input_tokens": 1024, "max_new_tokens": 1024,
                                 "concurrency": [1, 64]}
    cfg["benchmarks"][0]["scenarios"] = ["serve"]
    n = fit.need(cfg, "m", "ref", "v", "serve", REPO)
    assert n.context == 2048 and n.batch == 64
    assert n.kv == 32 * 2 * 32 * 128 * 2 * 2048 * 64          # 64 GiB of KV cache: with 12.6 GiB weights, too much
    (msg,) = fit.problems(cfg, REPO)
    assert "KV cache 64.0 GiB at 2048 tokens × batch 64" in msg


def test_the_check_runs_with_the_config_check_and_names_an_unknown_gpu():
    found = llmbench_config.problems(_gpu_config("llama-2-70b"), REPO)
    assert len(found) == 1 and "does not fit" in found[0]
    unknown = llmbench_config.problems(_gpu_config("llama-2-7b", gpu="NVIDIA B300"), REPO)
    assert unknown and "hardware.gpu = 'NVIDIA B300' is not in the datasheet table" in unknown[0]
    no_hw = copy.deepcopy(_gpu_config("llama-2-70b"))
    del no_hw["hardware"]
    assert fit.problems(no_hw, REPO) == []      # no GPU named: nothing to check against


def test_cpu_jobs_are_not_checked():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["hardware"] = {"gpu_memory_gib": 0.001}
    assert fit.problems(cfg, REPO) == []


def test_vllm_tensor_parallel_claims_its_gpus_and_the_refusal_names_a_degree_that_fits():
    """tensor_parallel_size N: a cuda job claims N GPUs (a CPU one none), the weights and KV cache are split over
    N, and a refusal's "at least K GPUs" is a degree the check then accepts (K/2 it still refuses)."""
    import re

    from llmbench import engines

    assert engines.gpus("vllm", {"device": "cuda", "tensor_parallel_size": 4}) == 4
    assert engines.gpus("vllm", {"device": "cpu", "tensor_parallel_size": 2,
                                 "cpu_threads_bind": "0|1"}) == 0
    one = fit.need(_gpu_config("llama-2-70b", tp=1), "m", "ref", "v", "latency", REPO)
    two = fit.need(_gpu_config("llama-2-70b", tp=2), "m", "ref", "v", "latency", REPO)
    assert (two.weights, two.kv, two.gpus) == (one.weights, one.kv, 2)
    assert two.per_gpu(0) == pytest.approx(one.per_gpu(0) / 2)
    (msg,) = fit.problems(_gpu_config("llama-2-70b", tp=2, gpu="NVIDIA L4"), REPO)
    assert "over 2 GPU(s)" in msg
    k = int(re.search(r"at least (\d+) GPUs \(tensor parallel: vLLM tensor_parallel_size", msg).group(1))
    assert fit.problems(_gpu_config("llama-2-70b", tp=k, gpu="NVIDIA L4"), REPO) == []
    assert fit.problems(_gpu_config("llama-2-70b", tp=k // 2, gpu="NVIDIA L4"), REPO)


def test_hf_tensor_parallel_70b_claims_its_gpus_and_splits_weights_over_them():
    """HF tp_size N (planning only, nothing runs): a cuda job claims N GPUs and runs under torchrun with N ranks, the
    fit check counts weights / N and KV / N per GPU, so the 70B fp16 shape that one H100 refuses fits on 2, and on
    24 GB L4s the refusal names a degree that fits."""
    import re

    from llmbench import engines

    assert engines.gpus("hf", {"device": "cuda", "tp_size": 4}) == 4
    assert engines.gpus("hf", {"device": "cpu", "tp_size": 2}) == 0
    assert engines.launcher("hf", {"device": "cuda", "tp_size": 4})[-2:] == ["--nproc-per-node", "4"]
    assert engines.launcher("hf", {"device": "cuda"}) == []
    one = fit.need(_gpu_config("llama-2-70b"), "m", "ref", "v", "latency", REPO)
    two = fit.need(_gpu_config("llama-2-70b", hf_tp=2), "m", "ref", "v", "latency", REPO)
    assert (two.weights, two.kv, two.gpus) == (one.weights, one.kv, 2)
    assert two.per_gpu(0) == pytest.approx(one.per_gpu(0) / 2)
    assert fit.problems(_gpu_config("llama-2-70b"), REPO)
    assert fit.problems(_gpu_config("llama-2-70b", hf_tp=2), REPO) == []
    (msg,) = fit.problems(_gpu_config("llama-2-70b", hf_tp=2, gpu="NVIDIA L4"), REPO)
    k = int(re.search(r"at least (\d+) GPUs \(tensor parallel: .*HF tp_size", msg).group(1))
    assert fit.problems(_gpu_config("llama-2-70b", hf_tp=k, gpu="NVIDIA L4"), REPO) == []
