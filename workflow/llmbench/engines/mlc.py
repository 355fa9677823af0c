"""MLC LLM adapter: ``mlc_llm.MLCEngine`` on an artifact of method ``mlc`` (converted weights, mlc-chat-config.json
and the compiled model library), fed the harness's token ids through MLC's completions API.

Options: ``OPTIONS`` below (docs/options.md); anything but device cpu claims one GPU (``placement``). ``prefix_cache`` is off by default although MLC's default is
"radix", so a repeated prompt is prefilled again and TTFT stays a prefill measurement.

Generation (python/mlc_llm/serve/engine.py, protocol/openai_api_protocol.py, cpp/serve/request_state.cc):
``engine.completions.create(prompt=<token ids>, max_tokens=N, temperature=0, stream=True,
logit_bias={<eos>: -100}, extra_body={"debug_config": {"ignore_eos": True}})``. A list of ints is used as the
prompt as is (no template, no BOS added: engine_utils.process_prompts); temperature 0 is argmax (the sampler sets
top_p 0 when temperature < eps); ``ignore_eos`` turns off both the stop tokens and the stop strings
(StopStrHandler gets none), so the request ends by ``max_tokens`` only: exactly N tokens. ``ignore_eos`` does not
mask the end tokens (request_state.cc only skips the stop check), so the logit bias -100 (the protocol's limit)
on generation_config.json's eos_token_id keeps them from being emitted, as the other engines mask them.

Token ids: the OpenAI-style chunks carry text (and token *strings* in logprobs), not ids. The ids exist one level
down: every engine step MLC hands ``RequestStreamOutput`` objects to ``MLCEngine._request_stream_callback_impl``,
whose ``unpack()`` gives ``delta_token_ids`` before detokenization. The adapter subclasses MLCEngine and reads
them there, calling on_token for each id the moment that callback runs (it runs in the caller's thread as the
chunk arrives from the engine thread), and records them separately as the request's output ids, whose count is
checked against MLC's own ``completion_tokens`` (the final usage chunk). This is a private method of MLC: load() fails with a clear error if the
installed version lacks it. Chunks with more than one id (e.g. after retokenization) are counted in the request's
engine metrics (``multi_token_chunks``): their tokens share one arrival time.

Tokenization: the HF tokenizer copied into the artifact, with its chat template, as the hf engine does, so every
engine gets identical input ids. Every mlc_llm import is inside load(): without mlc_llm (not installable on the
machines this was written on, see formats/mlc.py) load() raises EngineUnavailable and the job writes one
unverified row with the reason.
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.formats.mlc import DEVICES
from llmbench.core.engine import (Engine, EngineUnavailable, Generation, HostPeakMemory, Loaded, Placement,
                                  check_method)
from llmbench.core.options import Option

import json
from pathlib import Path
from typing import Any, Callable

ENV = "mlc"


ACCEPTS = ("mlc",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
OPTIONS = {
    "device": Option(str, "cpu", "must be the device the artifact's library was compiled for (its device "
                     "param); anything but cpu claims one GPU", choices=DEVICES),
    "mode": Option(str, "local", "MLCEngine's preset for max batch size, total sequence length and prefill chunk",
                   choices=("local", "interactive", "server")),
    "prefix_cache": Option(bool, False, "MLC's radix prefix cache (EngineConfig.prefix_cache_mode)"),
}


def placement(options: dict[str, Any]) -> Placement:
    """cpu, else one GPU (whatever its API: vulkan, rocm, metal, opencl), whose bandwidth the roofline reads."""
    if options["device"] == "cpu":
        return Placement(device="cpu", gpus=0)
    return Placement(device="cuda", gpus=1)


def token_id_engine(engine_cls: type) -> type:
    """A subclass of MLC's (sync) MLCEngine that records, at MLC's stream-output layer and before MLC
    detokenizes them, each chunk's ``delta_token_ids`` (``self.output_ids``) and the request's final usage
    (``self.final_usage``, MLC's own count), and passes the ids to ``self.token_sink``."""
    if not callable(getattr(engine_cls, "_request_stream_callback_impl", None)):
        raise RuntimeError(f"{engine_cls.__module__}.{engine_cls.__name__} has no _request_stream_callback_impl: "
                           "this mlc_llm version streams differently; the adapter cannot read token ids from it")

    class TokenIdMLCEngine(engine_cls):  # type: ignore[misc, valid-type]
        token_sink: Callable[[list[int]], None] | None = None
        output_ids: list[int]
        final_usage: dict[str, Any] | None = None

        def _request_stream_callback_impl(self, delta_outputs):
            sink = self.token_sink
            if sink is not None:
                for delta_output in delta_outputs:
                    _, stream_outputs = delta_output.unpack()
                    if not stream_outputs:
                        continue
                    # the final chunk carries usage only; n=1, so one stream output per chunk otherwise
                    usage = stream_outputs[0].request_final_usage_json_str
                    if usage is not None:
                        self.final_usage = json.loads(str(usage))
                        continue
                    ids = [int(t) for t in stream_outputs[0].delta_token_ids]
                    self.output_ids.extend(ids)
                    sink(ids)
            return super()._request_stream_callback_impl(delta_outputs)

    return TokenIdMLCEngine


def completion_tokens(usage: dict[str, Any] | None) -> int | None:
    """``completion_tokens`` of MLC's final usage JSON (top level, or under ``usage``); None if absent."""
    if not usage:
        return None
    found = usage.get("completion_tokens", (usage.get("usage") or {}).get("completion_tokens"))
    return None if found is None else int(found)


def _model_lib(artifact_dir: Path, manifest: dict[str, Any], device: str) -> Path:
    """The artifact's compiled model library, which must have been compiled for the variant's device."""
    from llmbench.formats.mlc import compiled_for

    built_for = compiled_for(manifest)
    if built_for != device:
        raise ValueError(f"variant device {device!r}, but {artifact_dir}'s model library was compiled for "
                         f"{built_for!r} (artifact param device); build an artifact for {device!r}")
    lib = artifact_dir / manifest["model_lib"]
    if not lib.exists():
        raise FileNotFoundError(f"{lib}: the artifact's model library is missing")
    return lib


class MLCEngineAdapter(HFTokenizerMixin, HostPeakMemory, Engine):  # HostPeakMemory: MLCEngine exposes no allocator peak
    name = "mlc"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        from llmbench.formats.mlc import import_error, not_installable

        artifact_dir = Path(artifact_dir)
        check_method(artifact_dir, manifest, "mlc", "mlc", "MLC weights + mlc-chat-config.json + compiled library")
        device = options["device"]
        error = import_error()
        if error is not None:
            raise EngineUnavailable(not_installable(error) + "; the mlc engine needs it to load MLC artifacts")

        from mlc_llm import MLCEngine
        from mlc_llm.serve import EngineConfig
        from transformers import AutoTokenizer

        lib = _model_lib(artifact_dir, manifest, device)
        cls = token_id_engine(MLCEngine)
        config = EngineConfig(prefix_cache_mode="radix" if options["prefix_cache"] else "disable")
        # model_lib given: MLC would otherwise JIT-compile a library of its own
        self.engine = cls(model=str(artifact_dir), model_lib=str(lib), device=device, mode=options["mode"],
                          engine_config=config)
        self.tokenizer = AutoTokenizer.from_pretrained(str(artifact_dir))
        self.runtime = self._runtime(manifest)
        return self._loaded(manifest, device)

    def _runtime(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """What ran: the engine config MLC completed at reload (read back, not the one passed in)."""
        complete = json.loads(self.engine.engine_config.asjson())
        return {
            "api": "MLCEngine.completions.create(prompt=token ids, temperature=0, stream=True, logit_bias={eos: -100}, "
                   "extra_body={'debug_config': {'ignore_eos': True}}); ids from _request_stream_callback_impl",
            "model_lib": manifest["model_lib"],
            "quantization": manifest.get("quantization"),
            "engine_config": {k: complete.get(k) for k in (
                "mode", "max_num_sequence", "max_total_sequence_length", "max_single_sequence_length",
                "prefill_chunk_size", "kv_cache_page_size", "kv_state_kind", "prefix_cache_mode", "prefill_mode",
                "speculative_mode", "tensor_parallel_shards", "opt", "gpu_memory_utilization")},
            "stop_rule": "debug_config.ignore_eos (no stop tokens or strings) + max_tokens = max_new_tokens",
            "tokenizer": "HF tokenizer of the artifact (chat template applied by the harness)",
        }

    def _loaded(self, manifest: dict[str, Any], device: str) -> Loaded:
        import mlc_llm

        from llmbench.provenance import cpu_name, versions

        dev = getattr(self.engine, "device", None)
        return Loaded(
            engine_version=getattr(mlc_llm, "__version__", None) or "unknown",
            device=str(dev) if dev is not None else device,
            device_name=cpu_name() if device == "cpu" else str(dev or device),
            # weight_bytes: the converted weight shards (params_shard_*.bin), which MLC loads onto the device
            weight_bytes=sum(f["size"] for name, f in manifest["files"].items() if name.startswith("params_shard_")),
            runtime=self.runtime,
            library_versions=versions("mlc-llm-nightly-cpu", "mlc-ai-nightly-cpu", "mlc-llm", "mlc-ai",
                                      "apache-tvm-ffi", "transformers", "tokenizers"),
        )

    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        """The ids returned are those MLC's stream outputs carried (recorded by the engine subclass, not built
        from on_token); their number must be MLC's own ``completion_tokens`` (its final usage), else the
        request fails. End tokens get logit bias -100 (the most MLC's protocol accepts): ``ignore_eos`` alone
        only stops MLC from ending on them; it would still emit them."""
        chunks = {"multi_token_chunks": 0}

        def sink(ids: list[int]) -> None:
            if len(ids) > 1:
                chunks["multi_token_chunks"] += 1
            for t in ids:
                on_token(t)

        engine = self.engine
        engine.output_ids, engine.final_usage, engine.token_sink = [], None, sink
        try:
            for _ in engine.completions.create(
                    prompt=[int(t) for t in input_ids], max_tokens=max_new_tokens, temperature=0.0, stream=True,
                    logit_bias={t: -100.0 for t in self._end_token_ids()},
                    extra_body={"debug_config": {"ignore_eos": True}}):
                pass  # text chunks; the ids reached on_token through the sink
        finally:
            engine.token_sink = None
        out, counted = list(engine.output_ids), completion_tokens(engine.final_usage)
        if counted != len(out):
            raise RuntimeError(f"MLC's usage says {counted} completion tokens, its stream outputs carried {len(out)}")
        return Generation(out, {**chunks, "completion_tokens": counted})

    def _end_token_ids(self) -> list[int]:
        """The end tokens HF ``generate`` masks (the artifact's generation_config.json eos_token_id), read once."""
        if getattr(self, "_eos", None) is None:
            from llmbench.engines._eos import generation_config_eos

            self._eos = generation_config_eos(Path(self.tokenizer.name_or_path))
        return self._eos


ADAPTER = MLCEngineAdapter

CONTRACT = ()  # none: MLC's wheels do not install on the CPU dev box (formats/mlc.py), so no case could run
