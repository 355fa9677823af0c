"""Does each GPU job fit its GPUs? Checked when the workflow is planned, before any job runs.

Per GPU of a job (tensor parallel over N GPUs: a 1/N share of weights and KV cache):

    weights      parameters × bytes per parameter of the artifact as it runs (fp16/bf16 2, fp32 4, int8 1,
                 4-bit 0.5 plus one fp16 scale per group), from the model's shape
    KV cache     layers × 2 × KV heads × head dim × 2 bytes (fp16) × context × batch; context = the scenario's
                 longest prompt in characters (at least one character per token, so an upper bound) + its new
                 tokens, or input + output tokens of a random serving dataset; batch = 1, or the largest
                 concurrency of a serving sweep
    headroom     `hardware.headroom_fraction` of the GPU's memory (default 10%): activations, the CUDA context,
                 the allocator's slack

against the GPU's memory: `hardware.gpu_memory_gib`, else the datasheet figure of `hardware.gpu`
(core/hardware.py). Without either, or where the model's shape is not known before it is fetched (a hub
model not yet downloaded), a job is not checked. A job that does not fit stops the plan with the numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench import engines
from llmbench.core import hardware, roofline
from llmbench.models import sources
from llmbench.planning import plan

GIB = 2**30
BYTES_PER_PARAM = {"float16": 2, "bfloat16": 2, "float32": 4, "auto": 2, "int8": 1}


@dataclass(frozen=True)
class Need:
    weights: float
    kv: float
    context: int
    batch: int
    gpus: int

    def per_gpu(self, headroom: float) -> float:
        return (self.weights + self.kv) / self.gpus + headroom


def model_config(config: dict[str, Any], model: str, workdir: Path = Path(".")) -> dict | None:
    """The HF config of a model, where it is known before its fetch job: a synthetic preset, or a model
    directory already fetched; else None."""
    source = config["models"][model]["source"]
    scheme, value = sources.parse(source)
    if scheme == "synthetic":
        return sources.preset_config(value)
    path = workdir / "resources/models" / model / "config.json"
    return json.loads(path.read_text()) if path.exists() else None


def bytes_per_param(artifact: dict[str, Any]) -> float | None:
    """Bytes per parameter of an artifact as it runs on a GPU; None where its method is not known here."""
    params = artifact.get("params") or {}
    if artifact["method"] in ("gptq", "awq"):
        bits, group = params.get("bits", 4), params.get("group_size", 128)
        return bits / 8 + 2 / max(1, group)       # packed weights + one fp16 scale per group
    if artifact["method"] == "reference":
        return BYTES_PER_PARAM.get(params.get("dtype", "float16"))
    return None


def _context_and_batch(config: dict[str, Any], scenario: str, workdir: Path) -> tuple[int, int]:
    sc = config["scenarios"][scenario]
    out = int(sc.get("max_new_tokens") or 0)
    inp = int(sc["input_tokens"]) if sc.get("input_tokens") else _longest_prompt_chars(workdir / sc.get("prompts", ""))
    if sc.get("kind") != "serving":
        return inp + out, 1
    # no concurrency bound: every request of a point may be in flight at once
    batch = max(sc["concurrency"]) if sc.get("concurrency") else int(sc.get("num_requests") or 1)
    return inp + out, int(batch)


def _longest_prompt_chars(path: Path) -> int:
    from llmbench.core import prompts

    return max((len(p["prompt"]) for p in prompts.load(path)), default=0) if path.is_file() else 0


def need(config: dict[str, Any], model: str, artifact: str, variant: str, scenario: str,
         workdir: Path = Path(".")) -> Need | None:
    """What one job needs, or None where it cannot be known at plan time (CPU job, unknown shape or method)."""
    v = config["variants"][variant]
    place = engines.placement(v["engine"], engines.resolved(v["engine"], v.get("options")))
    if place.device != "cuda":
        return None
    cfg = model_config(config, model, workdir)
    per = bytes_per_param(config["artifacts"][artifact])
    if cfg is None or per is None:
        return None
    shape = roofline.model_shape(cfg)
    params = shape["matmul_parameters"] + (0 if shape.get("tie_word_embeddings") else shape["hidden_size"] * shape["vocab_size"])
    context, batch = _context_and_batch(config, scenario, workdir)
    kv = roofline.kv_bytes_per_token(cfg, 2) * context * batch
    return Need(weights=params * per, kv=kv, context=context, batch=batch, gpus=max(1, place.gpus))


def gpu_memory(config: dict[str, Any]) -> tuple[float, str] | None:
    hw = config.get("hardware") or {}
    if hw.get("gpu_memory_gib"):
        return hw["gpu_memory_gib"] * GIB, f"hardware.gpu_memory_gib = {hw['gpu_memory_gib']}"
    if hw.get("gpu"):
        mem = hardware.memory_bytes(hw["gpu"])
        if mem is None:
            known = ", ".join(hardware.MEMORY_GB)
            raise ValueError(f"hardware.gpu = {hw['gpu']!r} is not in the datasheet table ({known}); "
                             "give hardware.gpu_memory_gib instead")
        return mem, f"{hw['gpu']}, {hardware.MEMORY_GB[hardware.card(hw['gpu']).name]} GB (datasheet)"
    return None


def problems(config: dict[str, Any], workdir: Path = Path(".")) -> list[str]:
    """One message per GPU job that cannot fit, with its numbers; empty when all fit or none can be checked."""
    memory = gpu_memory(config)
    if memory is None:
        return []
    capacity, which = memory
    headroom = float((config.get("hardware") or {}).get("headroom_fraction", 0.1)) * capacity
    out = []
    for m, a, v, s in plan.jobs(config):
        n = need(config, m, a, v, s, workdir)
        if n is None or n.per_gpu(headroom) <= capacity:
            continue
        out.append(
            f"models.{m} / artifacts.{a} / variants.{v} / scenarios.{s} does not fit: it needs "
            f"{n.per_gpu(headroom) / GIB:.1f} GiB per GPU (weights {n.weights / GIB:.1f} GiB + KV cache "
            f"{n.kv / GIB:.1f} GiB at {n.context} tokens × batch {n.batch}, over {n.gpus} GPU(s), + headroom "
            f"{headroom / GIB:.1f} GiB) but a GPU has {capacity / GIB:.1f} GiB ({which}); at least "
            f"{_gpus_needed(n, capacity, headroom)} GPUs (tensor parallel: vLLM tensor_parallel_size, HF tp_size) or a "
            "smaller artifact would fit")
    return out


def _gpus_needed(n: Need, capacity: float, headroom: float) -> str:
    room = capacity - headroom
    if room <= 0:
        return "more"
    k = 1
    while (n.weights + n.kv) / k > room and k < 1024:
        k *= 2
    return str(k)
