"""HF transformers adapter: ``model.generate`` with a streamer that hands each token to the harness.

Options: ``OPTIONS`` below (docs/options.md). ``max_cache_len`` matters because with a static cache and no size
transformers sizes the cache to each request's prompt + max_new_tokens and GROWS it when a longer request
comes, which recompiles the forward inside that measured request (40 s seen on an H200); set it to at least
the longest prompt + max_new_tokens so one compiled graph serves every request.

Tensor parallel (``tp_size`` N > 1): the job runs as N processes under ``python -m torch.distributed.run
--standalone --nproc-per-node N`` (``launcher``), each joining a torch.distributed process group (nccl on cuda,
each rank on cuda:LOCAL_RANK; gloo on cpu) and loading the model with transformers' ``tp_plan="auto"``
(``DistributedConfig(tp_plan="auto", tp_size=N)``; sharded weights become DTensors). Every rank runs every
forward (the collectives need all of them); rank 0's prompt ids are broadcast to the others at ``encode``, outside
the timed region; only rank 0 writes rows (job/bench.py). On cuda the job claims N GPUs (``placement``), and the
plan's fit check (planning/fit.py) counts weights and KV cache / N per GPU. Verified on CPU with 2 gloo ranks
(tests/test_hf_tp.py); not yet run on several GPUs with nccl.

Random weights per shard (a synthetic model not materialized, e.g. a 70B shape): ``from_config`` has no TP
argument in transformers 5.17, but ``from_pretrained(None, config=..., state_dict={}, distributed_config=...)``
of the architecture's class builds the model on the meta device, applies the TP plan (DTensor placeholders of each
rank's shard), then initializes the "missing" weights, i.e. each rank draws only its own shard
(``_init_weights``: normal(0, initializer_range), norms 1), so the whole model never exists on one device.
Measured on CPU (2 gloo ranks, a 353 M-parameter Llama shape, fp32): 176.5 M local parameters and 1.07 GB peak
RSS per rank against 1.74 GB for one process. Each rank seeds with ``seed + rank``, so a TP=N draw is another
random model than the TP=1 draw of the same seed (speed only; synthetic weights never give a quality figure); a
materialized synthetic model or a real checkpoint is loaded shard by shard from its files, the same weights as TP=1.
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.core.engine import ContractCase, Engine, Generation, Loaded, Placement, REFERENCE, device_missing
from llmbench.core.options import Option, at_least

from pathlib import Path
from typing import Any, Callable

DTYPES = ("auto", "float32", "float16", "bfloat16")
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")  # torch.nn.attention.SDPBackend members, lower case
ACCEPTS = ("hf",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
OPTIONS = {
    "device": Option(str, "auto", "auto: cuda when torch sees a GPU, else cpu", choices=("auto", "cpu", "cuda")),
    "dtype": Option(str, "auto", "weights and activations; auto: as stored in the artifact", choices=DTYPES),
    "attn_implementation": Option(str, "sdpa", "transformers' attention kernel",
                                  choices=("eager", "sdpa", "flash_attention_2")),
    "cache_implementation": Option(str, "dynamic", "KV cache; static lets generate() auto-compile the forward "
                                   "on GPU", choices=("dynamic", "static")),
    "torch_compile": Option(bool, False, "false passes disable_compile to generate(); true with a dynamic cache "
                            "compiles model.forward"),
    "num_threads": Option((int, None), None, "CPU threads for torch (null: torch's default)", check=at_least(1)),
    "max_cache_len": Option((int, None), None, "static cache size in tokens (null: transformers sizes it per "
                            "request, see the module docstring)", check=at_least(1)),
    "sdpa_backend": Option((str, None), None, "with attn_implementation sdpa: the one kernel SDPA may use "
                           "(torch.nn.attention.sdpa_kernel); probed at load, a backend that cannot run here makes "
                           "the line unverified with torch's reason; null: torch picks per call (not observed)",
                           choices=(None, *SDPA_BACKENDS)),
    "quantization": Option((str, None), None, "load-time quantization by bitsandbytes (the latency study's HF + "
                           "bitsandbytes lines): bnb-nf4 (4-bit NormalFloat) or bnb-int8 (LLM.int8()); runs in "
                           "env hf-bnb", choices=(None, "bnb-nf4", "bnb-int8")),
    "bnb_4bit_compute_dtype": Option(str, "auto", "bnb-nf4's matmul dtype; auto: the dtype option's (float32 when "
                                     "that is auto)", choices=DTYPES),
    "tp_size": Option(int, 1, "tensor parallel degree: N > 1 runs the job as N torch.distributed ranks (torchrun; "
                      "nccl on cuda, gloo on cpu) with transformers' tp_plan auto; on cuda the job claims N GPUs",
                      check=at_least(1)),
}
CHECKS = [lambda o: "tp_size > 1 does not combine with quantization (bitsandbytes)"
          if o["tp_size"] > 1 and o["quantization"] else None,
          lambda o: "max_cache_len applies to cache_implementation static only"
          if o["max_cache_len"] is not None and o["cache_implementation"] != "static" else None,
          lambda o: "sdpa_backend applies to attn_implementation sdpa only"
          if o["sdpa_backend"] is not None and o["attn_implementation"] != "sdpa" else None]


def env_for(options: dict[str, Any]) -> str:
    """hf, or hf-bnb (hf + bitsandbytes) for a bitsandbytes-quantized variant."""
    return "hf-bnb" if options.get("quantization") else "hf"


def placement(options: dict[str, Any]) -> Placement:
    """cuda/auto: tp_size GPUs (auto falls back to the CPU at load when torch sees none); cpu: num_threads (per
    rank under tensor parallel)."""
    if options.get("device", "auto") in ("cuda", "auto"):
        return Placement(device="cuda", gpus=int(options.get("tp_size", 1)))
    return Placement(device="cpu", gpus=0, cpu_threads=options.get("num_threads"))


def launcher(options: dict[str, Any]) -> list[str]:
    """The interpreter arguments a job runs under before ``-m llmbench``: tp_size N > 1 starts N ranks with
    torchrun (its module form, so the env's own torch launches them); none otherwise."""
    n = int(options.get("tp_size", 1))
    return ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)] if n > 1 else []


def _local(t):
    """A tensor parallel DTensor's local shard; any other tensor as it is."""
    return t.to_local() if hasattr(t, "to_local") else t


def _weight_bytes(model) -> int:
    """Parameters + buffers as held now (a tied lm_head is the embedding Parameter: counted once)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


PACKED_NAMES = ("weight_packed", "qweight")  # compressed-tensors, GPTQ/AWQ kernels: the packed int weight


def _linear_weight(m):
    """(kind, dtype) of what a Linear layer multiplies with: ("packed", int dtype) when it holds a packed
    integer weight, ("dense", float dtype) when its ``weight`` is a float matrix of the layer's full shape.
    Other parameters (scales, zero points, group indices, shapes) say nothing about what ran."""
    params = dict(m.named_parameters(recurse=False))
    for name in PACKED_NAMES:
        if name in params:
            return "packed", str(params[name].dtype).removeprefix("torch.")
    w = params.get("weight")
    if w is None:
        return None
    full = getattr(m, "in_features", None) and w.numel() == m.in_features * m.out_features
    kind = "dense" if w.is_floating_point() and (full or not hasattr(m, "in_features")) else "packed"
    return kind, str(w.dtype).removeprefix("torch.")


def _ran_as(model) -> str:
    """What the Linear layers compute with (see _linear_weight): packed integer weights (a quantized kernel)
    or dense floats, and for a quantized checkpoint whose layers hold dense floats, that it was decompressed
    (compressed-tensors unpacks GPTQ/AWQ to dense Linear on CPU at the first forward)."""
    qcfg = getattr(model.config, "quantization_config", None)
    qcfg = qcfg.to_dict() if hasattr(qcfg, "to_dict") else (qcfg or {})
    found = [(type(m).__name__, _linear_weight(m)) for m in model.modules() if "Linear" in type(m).__name__]
    found = [(name, kd) for name, kd in found if kd is not None]
    method = qcfg.get("quant_method") or qcfg.get("format")
    method = getattr(method, "value", method)  # transformers' QuantizationMethod enum (bitsandbytes configs)
    packed = sorted({(name, d) for name, (k, d) in found if k == "packed"})
    if packed:
        return (f"{method or 'quantized'} packed {'/'.join(sorted({d for _, d in packed}))} weights "
                f"({', '.join(sorted({n for n, _ in packed}))})")
    floats = sorted({d for _, (k, d) in found if k == "dense"})
    dense = "dense " + "/".join(f.replace("bfloat", "bf").replace("float", "fp") for f in floats)
    return f"{dense} after decompression ({method})" if method else dense


def _plain(value):
    """A quantization config as JSON-safe values: enums by their value, dtypes by name."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value).removeprefix("torch.")


def _weight_facts(model, torch) -> dict[str, Any]:
    """Loaded's weight fields, read from the model as it is now (updated after the first request)."""
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    from llmbench.core.roofline import kv_bytes_per_token

    act = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return {
        "weight_bytes": _weight_bytes(model),
        "weight_bytes_method": "parameters + buffers of the model as held (tied weights once)",
        "input_embedding_bytes": emb.numel() * emb.element_size(),
        "embedding_row_bytes": emb.shape[1] * emb.element_size(),
        "tied_embeddings": out is not None and _local(out.weight).data_ptr() == _local(emb).data_ptr(),
        # DynamicCache/StaticCache keep K and V in the model's activation dtype
        "kv_bytes_per_token": kv_bytes_per_token(model.config.to_dict(), torch.empty(0, dtype=act).element_size()),
        "ran_as": _ran_as(model),
    }


class _TokenStreamer:
    """transformers BaseStreamer protocol: ``put`` gets the prompt first, then each new token."""

    def __init__(self, on_token: Callable[[int], None]):
        self.on_token = on_token
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for tok in value.reshape(-1).tolist():  # .tolist() waits for the device: the token really exists now
            self.on_token(tok)

    def end(self):
        pass


def _device(torch, asked: str) -> str:
    """The device the variant runs on: auto -> cuda when torch sees a GPU, else cpu; cuda without one fails."""
    device = asked
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise device_missing("device=cuda", "torch sees no CUDA device here")
    return device


def _model(torch, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any], device: str):
    """The model on ``device`` in eval mode: the artifact's weights, or a synthetic manifest's seeded random ones
    (dtype auto: the dtype the synthetic artifact declares)."""
    from transformers import AutoModelForCausalLM

    dtype = "auto" if options["dtype"] == "auto" else getattr(torch, options["dtype"])
    attn = options["attn_implementation"]
    _refuse_hub_flash_attention(attn)
    synthetic = manifest.get("synthetic")
    if options["tp_size"] > 1:
        model = _tp_model(torch, artifact_dir, manifest, options, device, dtype, attn)
        model.eval()
        return model
    if options["quantization"]:
        return _bnb_model(torch, artifact_dir, synthetic, manifest, options, device, dtype, attn)
    if synthetic and not synthetic.get("materialized"):  # materialized: the random weights are files
        model = _synthetic_model(torch, artifact_dir, manifest, dtype, device, attn_implementation=attn)
    else:
        model = AutoModelForCausalLM.from_pretrained(artifact_dir, dtype=dtype, attn_implementation=attn)
        model.to(device)
    model.eval()
    return model


def _synthetic_model(torch, artifact_dir: Path, manifest: dict[str, Any], dtype, device: str, **kwargs):
    """A synthetic artifact's model: its config with random weights from its seed, made on ``device`` (dtype
    auto: the dtype the synthetic artifact declares)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(artifact_dir)
    if dtype == "auto":
        dtype = getattr(torch, manifest.get("params", {}).get("dtype", "float16"))
    torch.manual_seed(int(manifest["synthetic"]["seed"]))
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)


def _process_group(torch, device: str, n: int):
    """Join the job's torch.distributed group (torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*):
    nccl on cuda, each rank on cuda:LOCAL_RANK; gloo on cpu. Returns the 1-D device mesh of the N ranks."""
    import os

    dist = torch.distributed
    if "RANK" not in os.environ:
        raise RuntimeError(f"tp_size = {n} needs the job started by torchrun (the benchmark rule does this: "
                           "engine hook `launcher`); RANK is not set in this process")
    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if dist.get_world_size() != n:
        raise RuntimeError(f"tp_size = {n} but torchrun started {dist.get_world_size()} ranks")
    return dist.device_mesh.init_device_mesh(device, (n,))


def _tp_model(torch, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any], device: str, dtype,
              attn: str):
    """The model split over the process group's ranks by transformers' tp_plan auto. A synthetic model that is not
    materialized is drawn per shard (module docstring): each rank initializes only its own shard."""
    from transformers import AutoConfig, AutoModelForCausalLM, MODEL_FOR_CAUSAL_LM_MAPPING
    from transformers.distributed import DistributedConfig

    n = int(options["tp_size"])
    mesh = _process_group(torch, device, n)
    kwargs = {"attn_implementation": attn, "device_mesh": mesh,
              "distributed_config": DistributedConfig(tp_plan="auto", tp_size=n)}
    synthetic = manifest.get("synthetic")
    if synthetic and not synthetic.get("materialized"):
        config = AutoConfig.from_pretrained(artifact_dir)
        if dtype == "auto":
            dtype = getattr(torch, manifest.get("params", {}).get("dtype", "float16"))
        torch.manual_seed(int(synthetic["seed"]) + torch.distributed.get_rank())
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].from_pretrained(None, config=config, state_dict={},
                                                                         dtype=dtype, **kwargs)
    return AutoModelForCausalLM.from_pretrained(artifact_dir, dtype=dtype, **kwargs)


def _bnb_model(torch, artifact_dir: Path, synthetic, manifest, options, device: str, dtype, attn: str):
    """A bitsandbytes-quantized model: transformers quantizes while loading, so a synthetic artifact's seeded
    random weights are first made on ``device`` (as the unquantized path makes them) and written to a temporary
    directory next to the artifact, then loaded from there with the quantization config, then deleted."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM

    source, tmp = artifact_dir, None
    if synthetic:
        dense = _synthetic_model(torch, artifact_dir, manifest, dtype, device)
        tmp = Path(tempfile.mkdtemp(prefix=".bnb-synthetic-", dir=Path(artifact_dir).parent))
        dense.save_pretrained(tmp)
        del dense
        if device == "cuda":
            torch.cuda.empty_cache()
        source = tmp
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, attn_implementation=attn, device_map={"": device},
            quantization_config=_bnb_config(torch, options))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    model.eval()
    return model


def _refuse_hub_flash_attention(attn: str) -> None:
    """flash_attention_2 only with the flash-attn package: without it transformers 5 would fetch a hub kernel
    (kernels-community/flash-attn) instead, another implementation than the one the variant names."""
    import importlib.util

    from llmbench.core.engine import EngineUnavailable

    if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise EngineUnavailable("attn_implementation flash_attention_2 needs the flash-attn package, which is not "
                                "installed in this env (no flash-attn wheel for its torch here); transformers would "
                                "substitute a hub kernel, a different implementation, so the line does not run")


def _bnb_config(torch, options: dict[str, Any]):
    """transformers' BitsAndBytesConfig for the quantization option (bitsandbytes must import: env hf-bnb)."""
    from transformers import BitsAndBytesConfig

    if options["quantization"] == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = options["bnb_4bit_compute_dtype"]
    if compute == "auto":
        compute = "float32" if options["dtype"] == "auto" else options["dtype"]
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, compute))


def _sdpa_context(torch, backend: str | None):
    """A factory of the context that lets SDPA use only ``backend`` (None: no restriction)."""
    import contextlib

    if backend is None:
        return contextlib.nullcontext
    from torch.nn.attention import SDPBackend, sdpa_kernel

    member = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
              "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[backend]
    return lambda: sdpa_kernel([member])


class HFEngine(HFTokenizerMixin, Engine):
    name = "hf"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        import torch
        from transformers import AutoTokenizer

        self.torch = torch
        if options["num_threads"]:
            torch.set_num_threads(options["num_threads"])
        device = _device(torch, options["device"])
        self.cache_implementation = options["cache_implementation"]
        self.torch_compile = options["torch_compile"]
        self.max_cache_len = options["max_cache_len"]
        self.quantization = options["quantization"]
        self.model = _model(torch, artifact_dir, manifest, options, device)
        self.vocab_size = self.model.config.vocab_size
        self.fold_vocab = self.vocab_size  # encode: identity unless a synthetic shape has a smaller vocab
        self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
        self.tp = options["tp_size"] > 1
        self.device = torch.device(device, torch.cuda.current_device()) if self.tp and device == "cuda" else torch.device(device)
        self.sdpa_backend = options["sdpa_backend"]
        self.attention = _sdpa_context(torch, self.sdpa_backend)
        self._probe_sdpa_backend()
        self._compile_and_watch()
        self._greedy_generation_config()
        self.runtime = self._runtime(synthetic=bool(manifest.get("synthetic")))
        self.weights_recorded = False
        self.loaded = self._loaded()
        return self.loaded

    def _probe_sdpa_backend(self) -> None:
        """One short forward under the forced SDPA backend: where that kernel cannot run (wrong device, dtype or
        GPU generation) torch raises "No available kernel" and the line is unverified with torch's words; where it
        runs, every later forward of this engine runs under the same restriction, so it is what ran."""
        if self.sdpa_backend is None:
            return
        from llmbench.core.engine import EngineUnavailable

        ids = self.torch.tensor([[self.tokenizer.bos_token_id or 0] * 8], device=self.device)
        try:
            with self.torch.inference_mode(), self.attention():
                self.model(ids)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EngineUnavailable(f"SDPA backend {self.sdpa_backend} cannot run here "
                                    f"({self.device}, {self._runtime_dtype()}): {first}") from e

    def encode(self, prompt: str) -> list[int]:
        """As every HF adapter encodes; under tensor parallel every rank then takes rank 0's ids (a broadcast,
        outside the timed region), so all ranks run the same forwards."""
        return self._same_on_every_rank(super().encode(prompt))

    def tokenize_plain(self, text: str) -> list[int]:
        return self._same_on_every_rank(super().tokenize_plain(text))

    def _same_on_every_rank(self, ids: list[int]) -> list[int]:
        if not getattr(self, "tp", False):
            return ids
        box = [ids]
        self.torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _tensor_parallel(self) -> dict[str, Any] | None:
        """What ran, read back from torch.distributed and the model's device mesh (None without TP)."""
        if not self.tp:
            return None
        from torch.distributed.tensor import DTensor

        dist = self.torch.distributed
        mesh = getattr(self.model, "_device_mesh", None)
        params = list(self.model.parameters())
        return {"degree": mesh.size() if mesh is not None else None, "backend": dist.get_backend(),
                "world_size": dist.get_world_size(), "mesh_device": getattr(mesh, "device_type", None),
                "sharded_parameters": sum(isinstance(p, DTensor) for p in params), "parameters": len(params),
                "rank0_local_parameters": sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params)}

    def close(self) -> None:
        """Tensor parallel: wait for every rank, then leave the process group."""
        dist = self.torch.distributed if getattr(self, "tp", False) else None
        if dist is not None and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def _runtime_dtype(self) -> str:
        """The dtype of the model's first parameter, as the runtime records it."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    def _compile_and_watch(self) -> None:
        """Compile the forward when asked with a dynamic cache (a static cache lets generate() compile), and
        spy on generate()'s compile decision, so the metrics say whether it really compiled, not what we asked."""
        model = self.model
        self.compiled_by_generate: bool | None = None
        if self.torch_compile and self.cache_implementation == "dynamic":
            model.forward = self.torch.compile(model.forward)
        original = model._valid_auto_compile_criteria

        def spy(*args, **kwargs):
            self.compiled_by_generate = original(*args, **kwargs)
            return self.compiled_by_generate

        model._valid_auto_compile_criteria = spy

    def _greedy_generation_config(self) -> None:
        """Greedy with no sampling knobs left in the model's generation config (they would only warn)."""
        gen = self.model.generation_config
        gen.do_sample, gen.temperature, gen.top_p, gen.top_k = False, None, None, None
        if gen.pad_token_id is None:
            gen.pad_token_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id

    def _runtime(self, synthetic: bool) -> dict[str, Any]:
        """What ran, read back from the loaded model (dtype of its weights, attention kernel, Linear classes)."""
        model = self.model
        linear_kinds = sorted({type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__})
        qcfg = getattr(model.config, "quantization_config", None)
        return {
            "dtype": self._runtime_dtype(),
            "attn_implementation": model.config._attn_implementation,
            # forced: SDPA was allowed this one kernel for every forward and the load probe ran with it
            "sdpa_backend": (f"{self.sdpa_backend} (forced)" if self.sdpa_backend
                             else ("torch's choice per call (not observed)" if model.config._attn_implementation == "sdpa" else None)),
            "cache_implementation": self.cache_implementation,
            "torch_compile_requested": self.torch_compile,
            "linear_modules": linear_kinds,
            "quantization": _plain((qcfg.to_dict() if hasattr(qcfg, "to_dict") else qcfg) if qcfg else None),
            "torch_threads": self.torch.get_num_threads(),
            "synthetic_weights": synthetic,
            "tensor_parallel": self._tensor_parallel(),
        }

    def _loaded(self) -> Loaded:
        import transformers

        from llmbench.provenance import cpu_name, versions

        cuda = self.device.type == "cuda"
        # weight_bytes: parameters + buffers as loaded; re-read after the first request (_record_weights_as_run),
        # when compressed-tensors checkpoints have been unpacked, so rows get the weights as they ran
        return Loaded(
            engine_version=transformers.__version__,
            device=str(self.device),
            device_name=self.torch.cuda.get_device_name(self.device) if cuda else cpu_name(),
            runtime=self.runtime,
            library_versions=versions("torch", "transformers", "accelerate", "safetensors", *(("bitsandbytes",) if self.quantization else ())),
            threads=None if cuda else self.torch.get_num_threads(),
            **_weight_facts(self.model, self.torch),
        )

    def _record_weights_as_run(self) -> dict[str, Any]:
        """After the first request (a warm-up), record the weights as they ran: compressed-tensors
        checkpoints (GPTQ/AWQ from llm-compressor) load packed and are unpacked to dense weights on CPU at the
        first forward, so the bytes read per token and the layer state are only known now. Updates
        ``Loaded``'s weight facts (bytes, embedding, ran_as); returns the state for that request's engine metrics."""
        model = self.model
        for key, value in _weight_facts(model, self.torch).items():
            setattr(self.loaded, key, value)
        self.weights_recorded = True
        status: dict[str, int] = {}
        for m in model.modules():
            s = getattr(m, "quantization_status", None)
            if s is not None:
                status[str(getattr(s, "value", s))] = status.get(str(getattr(s, "value", s)), 0) + 1
        state: dict[str, Any] = {"weight_bytes": self.loaded.weight_bytes,
                                 "weight_dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})}
        if status:
            state["quantization_status"] = status
        return state

    def log_probs(self, token_ids: list[int]):
        """Teacher forced: the next-token log-probs (float32 numpy, positions 0..n-2 x vocab) of one forward,
        in the precision the model runs in, log-softmax taken in fp32."""
        torch = self.torch
        ids = torch.tensor([token_ids], device=self.device)
        with torch.inference_mode(), self.attention():
            logits = self.model(ids).logits[0, :-1].float()
            return torch.log_softmax(logits, dim=-1).cpu().numpy()

    def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
        """Teacher forced: log-prob of each token given the ones before it, and the argmax prediction."""
        from llmbench.core.engine import score_from_log_probs

        if len(token_ids) < 2:
            return [], []
        return score_from_log_probs(self.log_probs(token_ids), token_ids)

    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        torch = self.torch
        ids = torch.tensor([input_ids], device=self.device)
        kwargs: dict[str, Any] = {}
        if self.cache_implementation == "static":
            kwargs["cache_implementation"] = "static"
            if self.max_cache_len is not None:
                kwargs["max_cache_len"] = int(self.max_cache_len)
        if not self.torch_compile:
            kwargs["disable_compile"] = True
        with torch.inference_mode(), self.attention():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens, do_sample=False, streamer=_TokenStreamer(on_token), **kwargs)
        metrics: dict[str, Any] = {"compiled": bool(self.compiled_by_generate) or (
            self.torch_compile and self.cache_implementation == "dynamic")}
        if not self.weights_recorded:
            metrics["weights_after_first_request"] = self._record_weights_as_run()
        if self.cache_implementation == "static":  # the size generate() really gave the cache (largest so far)
            metrics["static_cache_len"] = getattr(self.model, "_previous_max_cache_length", None)
        return Generation(out[0, len(input_ids):].tolist(), metrics)

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory(self) -> tuple[int, str] | None:
        if self.device.type == "cuda":
            return self.torch.cuda.max_memory_allocated(self.device), "cuda_max_allocated"
        return None
ADAPTER = HFEngine

HF_FP32 = {"device": "cpu", "dtype": "float32", "attn_implementation": "sdpa", "num_threads": 2}
CONTRACT = (
    ContractCase("transformers", REFERENCE, HF_FP32, bytes_per_param=4, kv_element_bytes=4),
    # bitsandbytes nf4 on the CPU (its CPU library): the tied fp32 embedding (28,311,552 of the 134,515,008
    # parameters) stays 4 bytes, every Linear weight is packed 4-bit (half a byte; the absmax scales live in the
    # quant state, not in parameters); activations and the KV cache in fp32. A dense fallback would be 4 bytes.
    ContractCase("bitsandbytes", REFERENCE, {**HF_FP32, "quantization": "bnb-nf4"}, name="hf-bnb",
                 bytes_per_param=(4 * 28_311_552 + 0.5 * (134_515_008 - 28_311_552)) / 134_515_008,
                 kv_element_bytes=4),
)
