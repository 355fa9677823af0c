"""Overhead of the llmbench harness over each engine's own plain generation call, measured in one run.

Same loaded engine, same prompts, same number of new tokens, greedy, batch 1. Two paths per prompt:

  bare      the engine library's own call without a per-token callback (``BARE[engine]`` below: HF
            ``model.generate`` without streamer, CTranslate2 ``generate_batch``, llama.cpp's token loop without
            the callback, OpenVINO GenAI ``pipe.generate`` without streamer, vLLM's step loop without callback)
  harness   what a benchmark job does per request: the latency scenario's ``measure`` (the adapter's streaming
            ``generate`` with a timestamping callback, peak-memory reset/read, decode) and ``check_counts``

A round runs every prompt once on each path, in alternating order (bare first in even rounds, harness first in
odd ones), so slow drift of the machine hits both paths equally; a round's figure is harness time / bare time.
Rounds repeat until the 95% confidence interval of the mean ratio is narrower than the effect itself (the
sign of the overhead is then known) and narrower than the 2% goal's margin, or until ``--budget-s`` runs out
(the JSON then says ``"resolved": false``). Run in the engine's own env:

    <env>/bin/python benchmarks/harness_overhead.py --engine ct2 ARTIFACT_DIR [--tokens 64] [--options JSON]

It prints one JSON line; ``examples/*/harness-overhead*.json`` keep the runs the README cites.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from llmbench import engines, provenance
from llmbench.job import prompts
from llmbench.job.scenarios.latency import check_counts, measure
from llmbench.provenance import manifest

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.02
# each engine's CPU options as in config/config.yaml (2 threads), unless --options gives others
CPU_OPTIONS: dict[str, dict[str, Any]] = {
    "hf": {"device": "cpu", "dtype": "auto", "attn_implementation": "sdpa", "num_threads": 2},
    "ct2": {"device": "cpu", "compute_type": "int8", "intra_threads": 2},
    "llamacpp": {"n_threads": 2, "n_ctx": 2048, "n_gpu_layers": 0, "flash_attn": False},
    "openvino": {"device": "cpu", "num_threads": 2, "performance_hint": "LATENCY"},
    "vllm": {"device": "cpu", "dtype": "bfloat16", "enforce_eager": True, "kv_cache_space_gib": 2},
}


# --- the plain call of each engine, on the adapter's loaded objects; returns the new token count ---------

def _bare_hf(engine, ids: list[int], n: int) -> int:
    torch = engine.torch
    x = torch.tensor([ids], device=engine.device)
    kwargs: dict[str, Any] = {"disable_compile": True} if not engine.torch_compile else {}
    if engine.cache_implementation == "static":
        kwargs["cache_implementation"] = "static"
        if engine.max_cache_len is not None:
            kwargs["max_cache_len"] = int(engine.max_cache_len)
    with torch.inference_mode():
        out = engine.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                                    do_sample=False, **kwargs)
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)  # the harness's clock stops at the last token on the host too
    return out.shape[1] - len(ids)


def _bare_ct2(engine, ids: list[int], n: int) -> int:
    prompt = [engine.id_to_token[i] for i in ids]
    res = engine.generator.generate_batch([prompt], max_length=n, min_length=n, sampling_topk=1,
                                          end_token=engine.end_token, include_prompt_in_result=False)
    return len(res[0].sequences_ids[0])


def _bare_llamacpp(engine, ids: list[int], n: int) -> int:
    """The adapter's own loop (end tokens masked, greedy, one eval per token) without the callback."""
    llm, sampler = engine.llm, engine._greedy_sampler()
    llm.reset()
    llm.eval(list(ids))
    for _ in range(n):
        llm.eval([int(sampler.sample(llm._ctx, -1))])
    return llm.n_tokens - len(ids)


def _bare_openvino(engine, ids: list[int], n: int) -> int:
    cfg = engine.gen_config
    cfg.max_new_tokens = n
    cfg.min_new_tokens = n
    result = engine.pipe.generate(engine._inputs(ids), cfg)
    return len(result.tokens[0])


def _bare_vllm(engine, ids: list[int], n: int) -> int:
    from llmbench.engines.vllm import sampling_kwargs

    return len(engine.run_to_end(ids, engine.SamplingParams(**sampling_kwargs(n))).outputs[0].token_ids)


BARE: dict[str, Callable[[Any, list[int], int], int]] = {
    "hf": _bare_hf, "ct2": _bare_ct2, "llamacpp": _bare_llamacpp, "openvino": _bare_openvino, "vllm": _bare_vllm,
}


# --- the measurement -----------------------------------------------------------------------------------

def ci95(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) of per-round values; half-width inf below two values."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.inf
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(values), 2.2)
    if len(values) > 15:
        t = 2.13 if len(values) < 20 else 2.09 if len(values) < 30 else 2.0
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def resolved(ratios: list[float], min_rounds: int) -> bool:
    """Enough rounds: the interval excludes no overhead (or is within 0.25%) and does not straddle the goal."""
    if len(ratios) < min_rounds:
        return False
    mean, half = ci95(ratios)
    effect = abs(mean - 1)
    return (half < effect or half < 0.0025) and not (mean - half <= 1 + GOAL <= mean + half)


def one_round(engine, bare, encoded: list[list[int]], n: int, harness_first: bool) -> tuple[float, float]:
    def run_bare() -> float:
        t = time.perf_counter()
        for ids in encoded:
            got = bare(engine, ids, n)
            if got != n:
                raise RuntimeError(f"bare call returned {got} tokens, {n} asked")
        return time.perf_counter() - t

    def run_harness() -> float:
        t = time.perf_counter()
        for ids in encoded:
            problem = check_counts(measure(engine, ids, n))
            if problem:
                raise RuntimeError(f"harness path: {problem}")
        return time.perf_counter() - t

    if harness_first:
        h = run_harness()
        return run_bare(), h
    b = run_bare()
    return b, run_harness()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--engine", required=True, choices=sorted(BARE))
    ap.add_argument("--options", type=json.loads, default=None, help="engine options (JSON); default CPU_OPTIONS")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--min-rounds", type=int, default=4)
    ap.add_argument("--max-rounds", type=int, default=30)
    ap.add_argument("--budget-s", type=float, default=600, help="stop starting rounds after this many seconds")
    ap.add_argument("--prompts", default=str(REPO / "config/prompts/latency-9-prompts.jsonl"))
    a = ap.parse_args()

    art = Path(a.artifact)
    options = a.options if a.options is not None else CPU_OPTIONS[a.engine]
    options = engines.resolved(a.engine, options)
    engine = engines.create(a.engine)
    loaded = engine.load(art, manifest.verify(art), options)
    encoded = [engine.encode(p["prompt"]) for p in prompts.load(a.prompts)]
    bare = BARE[a.engine]
    one_round(engine, bare, encoded, a.tokens, False)  # warm-up of both paths (first-use costs), not counted
    start, rounds = time.perf_counter(), []
    while len(rounds) < a.max_rounds and not resolved([h / b for b, h in rounds], a.min_rounds):
        if time.perf_counter() - start > a.budget_s and len(rounds) >= 2:
            break
        rounds.append(one_round(engine, bare, encoded, a.tokens, harness_first=len(rounds) % 2 == 1))
    ratios = [h / b for b, h in rounds]
    mean, half = ci95(ratios)
    print(json.dumps({
        "engine": a.engine, "artifact": art.name, "overhead_pct": round((mean - 1) * 100, 2),
        "ci95_pct": [round((mean - half - 1) * 100, 2), round((mean + half - 1) * 100, 2)],
        "resolved": resolved(ratios, a.min_rounds), "goal_pct": GOAL * 100,
        "meets_goal": mean + half <= 1 + GOAL,
        "round_ratios": [round(r, 4) for r in ratios], "bare_s": [round(b, 3) for b, _ in rounds],
        "harness_s": [round(h, 3) for _, h in rounds], "tokens": a.tokens, "prompts": len(encoded),
        "options": options, "runtime": loaded.runtime, "device": loaded.device_name,
        "engine_version": loaded.engine_version, "cpu_count": provenance.host().get("cpu_count"),
        "cpu_flags": provenance.host().get("cpu_flags"), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, default=str))


if __name__ == "__main__":
    main()
