"""OpenVINO GenAI adapter: ``openvino_genai.LLMPipeline`` fed the harness's token ids, a ``StreamerBase`` that hands
each new token id to the harness.

Options: ``OPTIONS`` below (docs/options.md); each but ``prefix_caching`` is an OpenVINO property (``PROPERTY``),
left to the plugin where it is auto/null. ``prefix_caching`` is off by default although GenAI turns it on for PA:
a repeated prompt then reuses the KV cache of an earlier request (its TTFT drops, 190 -> 107 ms seen) and its
output can differ, and the harness repeats prompts.

Exactly ``max_new_tokens``: the pipeline's own generation config (generation_config.json: the EOS id HF ``generate``
masks) with ``min_new_tokens = max_new_tokens`` (EOS probability zero until then, as HF does),
``ignore_eos = True`` and greedy decoding. What ran is read back from GenAI itself: with OPENVINO_LOG_LEVEL >= 2
while the pipeline is built, GenAI prints each compiled model's properties (inference precision, KV cache
precision, threads, ...) to stdout; ``load`` captures and parses that. The weight compression comes from the
IR's rt_info (NNCF's record). Each request's own PerfMetrics (TTFT, TPOT) go into its engine metrics.

``score`` (teacher forced, for the quality figures) runs the same IR through optimum-intel's
``OVModelForCausalLM`` (the stateful model, compiled with the same properties) on first use, so benchmark jobs
never load it.
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.engines._native_output import capture_fd
from llmbench.core.engine import (ContractArtifact, ContractCase, ContractFP32, Engine, Generation, HostPeakMemory,
                                  Loaded, Placement, check_method)
from llmbench.core.options import Option, at_least

import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

ENV = "openvino"

PRECISIONS = ("auto", "f32", "bf16", "f16")
KV_PRECISIONS = ("auto", "u8", "u4", "f16", "bf16", "f32")
# option -> OpenVINO property name
PROPERTY = {"num_threads": "INFERENCE_NUM_THREADS", "performance_hint": "PERFORMANCE_HINT",
            "inference_precision": "INFERENCE_PRECISION_HINT", "kv_cache_precision": "KV_CACHE_PRECISION",
            "dynamic_quantization_group_size": "DYNAMIC_QUANTIZATION_GROUP_SIZE",
            "attention_backend": "ATTENTION_BACKEND"}
# compiled-model properties recorded under short names (the full set is kept too)
READ_BACK = {"INFERENCE_PRECISION_HINT": "inference_precision", "KV_CACHE_PRECISION": "kv_cache_precision",
             "KEY_CACHE_PRECISION": "key_cache_precision", "VALUE_CACHE_PRECISION": "value_cache_precision",
             "INFERENCE_NUM_THREADS": "inference_num_threads", "NUM_STREAMS": "num_streams",
             "PERFORMANCE_HINT": "performance_hint", "EXECUTION_MODE_HINT": "execution_mode",
             "DYNAMIC_QUANTIZATION_GROUP_SIZE": "dynamic_quantization_group_size",
             "ENABLE_HYPER_THREADING": "hyper_threading", "ENABLE_CPU_PINNING": "cpu_pinning",
             "EXECUTION_DEVICES": "execution_devices"}


ACCEPTS = ("openvino",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
OPTIONS = {
    "device": Option(str, "cpu", "OpenVINO's CPU plugin", choices=("cpu",)),
    "num_threads": Option((int, None), None, "INFERENCE_NUM_THREADS (null: the plugin's default, all cores)",
                          check=at_least(1)),
    "performance_hint": Option(str, "LATENCY", "PERFORMANCE_HINT", choices=("LATENCY", "THROUGHPUT")),
    "inference_precision": Option(str, "auto", "INFERENCE_PRECISION_HINT, the precision activations and "
                                  "decompressed weights run in (auto: the plugin's default, bf16 on a CPU with "
                                  "avx512-bf16 or AMX, else f32)", choices=PRECISIONS),
    "kv_cache_precision": Option(str, "auto", "KV_CACHE_PRECISION (auto: the plugin's default, u8 on CPU in "
                                 "2026.4)", choices=KV_PRECISIONS),
    "dynamic_quantization_group_size": Option(
        (int, None), None, "DYNAMIC_QUANTIZATION_GROUP_SIZE: activations of compressed-weight MatMuls are "
        "quantized to int8 per group of this size at run time (0: off; null: the plugin's default, 32 in 2026.4)",
        check=at_least(0)),
    "attention_backend": Option(str, "PA", "PA: paged attention / continuous batching (GenAI's default on "
                                "CPU); SDPA: the stateful model", choices=("PA", "SDPA")),
    "prefix_caching": Option(bool, False, "GenAI's prefix cache (PA only); off: a repeated prompt is prefilled "
                             "again"),
}
CHECKS = [lambda o: "prefix_caching applies to attention_backend PA only"
          if o["prefix_caching"] and o["attention_backend"] == "SDPA" else None]


def placement(options: dict[str, Any]) -> Placement:
    return Placement(device="cpu", gpus=0, cpu_threads=options.get("num_threads"))


def ov_properties(options: dict[str, Any]) -> dict[str, Any]:
    """The OpenVINO properties a variant's (resolved) options ask for (the plugin's defaults stay where an option
    is auto/null)."""
    return {prop: options[opt] for opt, prop in PROPERTY.items() if options[opt] not in (None, "auto")}


def parse_properties(text: str) -> dict[str, dict[str, Any]]:
    """GenAI's printout (OPENVINO_LOG_LEVEL >= 2) -> {model title: {property: value}}, plus a ``SchedulerConfig``
    entry when it printed one. Its format: 'Model: <title>' then '  NAME: value' lines, then
    'EXECUTION_DEVICES:' and ' <device>: <full name>'."""
    out: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    in_devices = False
    for line in text.splitlines():
        if line.startswith("Model: "):
            current = out.setdefault(line[len("Model: "):].strip(), {})
            in_devices = False
        elif line.startswith("SchedulerConfig {"):
            current = out.setdefault("SchedulerConfig", {})
            in_devices = False
        elif line.strip() == "}":
            current = None
        elif line.startswith("EXECUTION_DEVICES:") and current is not None:
            in_devices = True
        elif current is not None and (m := re.match(r"^\s+([A-Za-z_0-9]+):\s?(.*)$", line)):
            key, value = m.group(1), m.group(2).strip()
            if in_devices:
                current.setdefault("DEVICE_FULL_NAMES", {})[key] = value
            else:
                current[key] = value
    return out


def _prop_str(value: Any) -> str:
    """An OpenVINO property value as GenAI prints it (element types as 'bf16', not "<Type: 'bfloat16'>")."""
    if hasattr(value, "get_type_name"):
        return value.get_type_name()
    if hasattr(value, "name") and not isinstance(value, (str, int, float)):
        return value.name  # enums: ExecutionMode.PERFORMANCE -> PERFORMANCE
    return str(value)


def _streamer_class(base, running):
    """A GenAI ``StreamerBase`` subclass: ``write`` gets each new token id (an int, or a list of ids) as the
    pipeline samples it, on the host, and hands it to the harness."""

    class TokenStreamer(base):
        def __init__(self, on_token: Callable[[int], None]):
            super().__init__()
            self.on_token = on_token
            self.count = 0

        def write(self, token):
            for t in (token if isinstance(token, (list, tuple)) else (token,)):
                self.on_token(int(t))
                self.count += 1
            return running

        def end(self):
            pass

    return TokenStreamer


def _pipeline_config(openvino_genai, options: dict[str, Any], props: dict[str, Any]):
    """(LLMPipeline keyword arguments, the SchedulerConfig passed or None): the requested properties, plus on PA
    GenAI's own scheduler default for LLMPipeline (unlimited tokens per step, so a prompt is prefilled in one
    step) except prefix caching; the Python SchedulerConfig() default would split prefill at 256."""
    config: dict[str, Any] = dict(props)
    scheduler = None
    if props.get("ATTENTION_BACKEND", "PA") == "PA":
        scheduler = openvino_genai.SchedulerConfig()
        scheduler.max_num_batched_tokens = 2**64 - 1
        scheduler.enable_prefix_caching = options["prefix_caching"]
        config["scheduler_config"] = scheduler
    return config, scheduler


def _pipeline_and_printout(openvino_genai, artifact_dir: Path, config: dict[str, Any]):
    """(the LLMPipeline, GenAI's printout of each compiled model's properties, parsed), built with
    OPENVINO_LOG_LEVEL=2 for the duration, so GenAI prints them."""
    previous = os.environ.get("OPENVINO_LOG_LEVEL")
    os.environ["OPENVINO_LOG_LEVEL"] = "2"
    try:
        pipe, log_text = capture_fd(1, lambda: openvino_genai.LLMPipeline(str(artifact_dir), "CPU", **config))
    finally:
        if previous is None:
            os.environ.pop("OPENVINO_LOG_LEVEL", None)
        else:
            os.environ["OPENVINO_LOG_LEVEL"] = previous
    return pipe, parse_properties(log_text)


class OpenVINOEngine(HFTokenizerMixin, HostPeakMemory, Engine):  # HostPeakMemory: CPU, the harness measures peak RSS
    name = "openvino"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        import numpy as np
        import openvino as ov
        import openvino_genai
        from transformers import AutoTokenizer

        artifact_dir = Path(artifact_dir)
        check_method(artifact_dir, manifest, "openvino", "openvino", "OpenVINO IR")
        self.np, self.ov, self.genai = np, ov, openvino_genai
        self.artifact_dir = artifact_dir
        self.options = dict(options)
        self.props = ov_properties(options)
        config, scheduler = _pipeline_config(openvino_genai, options, self.props)
        self.pipe, printed = _pipeline_and_printout(openvino_genai, artifact_dir, config)
        self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
        self.gen_config = self.pipe.get_generation_config()  # generation_config.json: eos_token_id
        self.gen_config.do_sample = False
        self.gen_config.num_beams = 1
        self.gen_config.ignore_eos = True
        self.streamer_class = _streamer_class(openvino_genai.StreamerBase, openvino_genai.StreamingStatus.RUNNING)
        self.runtime = self._runtime(manifest, printed, scheduler)
        return self._loaded()

    def _runtime(self, manifest: dict[str, Any], printed: dict[str, dict[str, Any]], scheduler) -> dict[str, Any]:
        """What ran: the LLM's compiled properties from GenAI's printout (warns when it printed none), the CPU
        plugin's defaults, and the weight compression the IR records."""
        from llmbench.formats.openvino import recorded_ir_facts

        llm_title = next((t for t in printed if t not in ("OV Tokenizer", "OV Detokenizer", "SchedulerConfig")), None)
        compiled = printed.get(llm_title, {}) if llm_title else {}
        facts = recorded_ir_facts(manifest, self.artifact_dir / "openvino_model.xml")
        core = self.ov.Core()
        runtime = {
            "openvino_version": self.ov.get_version(),
            "pipeline_model": llm_title,  # e.g. "LLM with Paged Attention"
            "attention_backend": self.props.get("ATTENTION_BACKEND", "PA") if llm_title else None,
            **{short: compiled.get(prop) for prop, short in READ_BACK.items()},
            "compiled_properties": compiled or None,
            "compiled_properties_source": "GenAI printout at load (OPENVINO_LOG_LEVEL=2)" if compiled else
                                          "not printed by this GenAI version: nothing read back",
            "scheduler_config": printed.get("SchedulerConfig"),
            "prefix_caching": scheduler.enable_prefix_caching if scheduler is not None else None,
            "requested_properties": self.props,
            "plugin_defaults": {p: _prop_str(core.get_property("CPU", p))
                                for p in ("INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION", "INFERENCE_NUM_THREADS")},
            "weight_compression": facts["nncf_weight_compression"],
            "weight_constants_by_type": facts["weight_constants_by_type"],
            "eos_token_id_masked": int(self.gen_config.eos_token_id),
            "stop_rule": "pipeline generation config + min_new_tokens = max_new_tokens, ignore_eos, greedy",
            "input": "harness token ids as openvino_genai.TokenizedInputs (input_ids + attention_mask, int64)",
        }
        if not compiled:
            print("WARNING: GenAI printed no compiled-model properties; runtime records the requested ones only",
                  file=sys.stderr)
        return runtime

    def _loaded(self) -> Loaded:
        from llmbench.provenance import cpu_name, versions

        return Loaded(
            engine_version=self.genai.__version__,
            device="cpu",
            device_name=cpu_name(),
            runtime=self.runtime,
            threads=int(self.runtime["inference_num_threads"]) if str(self.runtime.get(
                "inference_num_threads") or "").isdigit() else None,
            **self._weight_facts(),
            library_versions=versions("openvino", "openvino-genai", "openvino-tokenizers", "transformers",
                                      "tokenizers", "numpy"),
        )

    def _weight_facts(self) -> dict[str, Any]:
        """Loaded's weight fields: the IR's constants (formats/openvino.py; compressed weights as stored and
        run, decompressed per use), the KV cache at the compiled KV precision (config.json's shape), and what
        ran in words: the weight compression and the compiled runtime precisions."""
        import json

        from llmbench.core.roofline import kv_bytes_per_token
        from llmbench.formats.openvino import weight_facts

        facts = weight_facts(self.artifact_dir / "openvino_model.xml")
        rt = self.runtime
        cfg = json.loads((self.artifact_dir / "config.json").read_text())
        kv = rt.get("kv_cache_precision")
        sizes = {"u8": 1, "i8": 1, "u4": 0.5, "f16": 2, "bf16": 2, "f32": 4}
        mode = (rt.get("weight_compression") or {}).get("mode", "uncompressed")
        return {
            "weight_bytes": facts["weight_bytes"],
            "weight_bytes_method": "openvino_model.xml's constants (each .bin range once); KV: elements at "
                                   f"{kv}, a quantized cache's scales and zero points not counted",
            "input_embedding_bytes": facts["input_embedding_bytes"],
            "embedding_row_bytes": facts["input_embedding_bytes"] // cfg["vocab_size"],
            "tied_embeddings": facts["tied"],
            "kv_bytes_per_token": kv_bytes_per_token(cfg, sizes[kv]) if kv in sizes else None,
            "ran_as": f"{mode} weights; inference precision {rt.get('inference_precision')}, KV cache {kv}, "
                      f"dynamic quantization group size {rt.get('dynamic_quantization_group_size')}",
        }

    def _inputs(self, input_ids: list[int]):
        np, ov = self.np, self.ov
        ids = np.asarray([input_ids], dtype=np.int64)
        return self.genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))

    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        cfg = self.gen_config
        cfg.max_new_tokens = max_new_tokens
        cfg.min_new_tokens = max_new_tokens
        streamer = self.streamer_class(on_token)
        result = self.pipe.generate(self._inputs(input_ids), cfg, streamer)
        out = [int(t) for t in result.tokens[0]]
        pm = result.perf_metrics
        return Generation(out, {"genai_perf_metrics": {  # GenAI's own figures for this request (ms)
            "input_tokens": int(pm.get_num_input_tokens()), "generated_tokens": int(pm.get_num_generated_tokens()),
            "streamed_tokens": streamer.count,
            "ttft_ms": round(float(pm.get_ttft().mean), 3), "tpot_ms": round(float(pm.get_tpot().mean), 3),
            "generate_ms": round(float(pm.get_generate_duration().mean), 3),
            "inference_ms": round(float(pm.get_inference_duration().mean), 3)}})

    def _scorer(self):
        """optimum-intel's OVModelForCausalLM on the same IR and properties (loaded on first score)."""
        if getattr(self, "_ov_scorer", None) is None:
            from optimum.intel import OVModelForCausalLM

            ov_config = {k: v for k, v in self.props.items() if k != "ATTENTION_BACKEND"}
            model = OVModelForCausalLM.from_pretrained(str(self.artifact_dir), device="CPU", ov_config=ov_config,
                                                       compile=True)
            compiled = model.request.get_compiled_model()
            self.runtime["score_backend"] = {
                "api": "optimum.intel.OVModelForCausalLM (stateful IR, SDPA) forward, logits of every position",
                "ov_config": ov_config,
                **{short: _prop_str(compiled.get_property(prop)) for prop, short in READ_BACK.items()
                   if prop != "EXECUTION_DEVICES"},
            }
            self._ov_scorer = model
        return self._ov_scorer

    def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
        """Teacher forced: for positions 1..n-1, log p(token_ids[i] | token_ids[:i]) and the argmax prediction."""
        from llmbench.core.engine import score_from_log_probs

        if len(token_ids) < 2:
            return [], []
        return score_from_log_probs(self.log_probs(token_ids), token_ids)

    def log_probs(self, token_ids: list[int]):
        """Teacher forced: next-token log-probs (float32 numpy, positions 0..n-2 x vocab) from the
        optimum-intel model's forward logits (see _scorer), log-softmax in fp32."""
        import torch

        model = self._scorer()
        ids = torch.tensor([token_ids], dtype=torch.int64)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, :-1].float()
        if logits.shape[0] != len(token_ids) - 1:
            raise RuntimeError(f"OVModelForCausalLM returned logits for {logits.shape[0]} positions, expected "
                               f"{len(token_ids) - 1}")
        return torch.log_softmax(logits, dim=-1).numpy()


ADAPTER = OpenVINOEngine

_OV_EXACT = {"device": "cpu", "num_threads": 2, "inference_precision": "f32", "kv_cache_precision": "f32",
             "dynamic_quantization_group_size": 0}
CONTRACT = (ContractCase(
    "openvino_genai", ContractArtifact("openvino", {"weight_format": "int8"}), {"device": "cpu", "num_threads": 2},
    ContractFP32(ContractArtifact("openvino", {"weight_format": "fp32"}),
                 [{**_OV_EXACT, "attention_backend": "PA"}, {**_OV_EXACT, "attention_backend": "SDPA"}],
                 {"inference_precision": "f32", "kv_cache_precision": "f32"}),
    bytes_per_param=1, kv_element_bytes=1),)  # NNCF int8 weights; the CPU plugin's u8 KV cache
