"""Overhead of the llmbench harness over each engine's own plain generation call, measured in one run.

Same loaded engine, same prompts, same number of new tokens, greedy, batch 1. Two paths per prompt:

  bare      the engine library's own call without a per-token callback (``BARE[engine]`` below: HF
            ``model.generate`` without streamer, CTranslate2 ``generate_batch``, llama.cpp's token loop without
            the callback, OpenVINO GenAI ``pipe.generate`` without streamer, vLLM's step loop without callback)
  harness   what a benchmark job does per request: the latency scenario's ``measure`` (the adapter's streaming
            ``generate`` with a timestamping callback, peak-memory reset/read, decode) and ``check_counts``

A round runs every prompt once on each path; each prompt's two runs are back to back (a *pair*), bare first
or harness first by turns, so drift of the machine between two runs seconds apart hits both paths about
equally. A pair's figure is harness time / bare time; the overhead is the mean over pairs (each prompt weighs
the same), with a 95% t-interval over pairs. Two harness times are compared with the bare call's wall time:

  wall      the whole harness request (``measure`` + ``check_counts``): what a job spends per request, the
            post-processing after the last token included (decode, recount, memory read)
  recorded  the latency the row records (``latency_s``: request start to the last token's stamp): whether the
            harness slows the tokens it times, which is what could bias a reported figure Pairs repeat until that interval is narrower than the effect
itself (the sign of the overhead is then known) and does not straddle the 2% goal, or until ``--budget-s``
runs out (the JSON then says ``"resolved": false``). Run in the engine's own env:

Run in the engine's own env:

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
from llmbench.core import prompts
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


def _bare_openvino_streamer(engine, ids: list[int], n: int) -> int:
    """OpenVINO GenAI ``generate`` with the adapter's streamer class but a callback that does nothing: the
    difference to the harness is llmbench's own per-token work, to ``openvino`` GenAI's streaming itself."""
    cfg = engine.gen_config
    cfg.max_new_tokens = n
    cfg.min_new_tokens = n
    result = engine.pipe.generate(engine._inputs(ids), cfg, engine.streamer_class(lambda token: None))
    return len(result.tokens[0])


def _bare_vllm(engine, ids: list[int], n: int) -> int:
    from llmbench.engines.vllm import sampling_kwargs

    return len(engine.run_to_end(ids, engine.SamplingParams(**sampling_kwargs(n))).outputs[0].token_ids)


BARE: dict[str, Callable[[Any, list[int], int], int]] = {
    "hf": _bare_hf, "ct2": _bare_ct2, "llamacpp": _bare_llamacpp, "openvino": _bare_openvino, "vllm": _bare_vllm,
}
# other plain calls of an engine, for finding what costs the time (--bare NAME)
BARE_VARIANTS: dict[str, Callable[[Any, list[int], int], int]] = {"openvino-streamer": _bare_openvino_streamer}


# --- the measurement -----------------------------------------------------------------------------------

def ci95(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) of the values; half-width inf below two values."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.inf
    df = len(values) - 1
    t = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}.get(df)
    if t is None:  # two-sided 97.5% quantiles of Student's t, rounded up (conservative)
        t = 2.23 if df < 15 else 2.14 if df < 20 else 2.09 if df < 30 else 2.05 if df < 60 else 2.0
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def resolved(ratios: list[float], min_pairs: int) -> bool:
    """Enough pairs: the interval excludes no overhead (or is within 0.25%) and does not straddle the goal."""
    if len(ratios) < min_pairs:
        return False
    mean, half = ci95(ratios)
    effect = abs(mean - 1)
    return (half < effect or half < 0.0025) and not (mean - half <= 1 + GOAL <= mean + half)


def timed_pair(engine, bare, ids: list[int], n: int, harness_first: bool) -> tuple[float, float, float]:
    """(bare seconds, harness wall seconds, harness recorded latency) of one prompt, the runs back to back."""
    def run_bare() -> float:
        t = time.perf_counter()
        got = bare(engine, ids, n)
        took = time.perf_counter() - t
        if got != n:
            raise RuntimeError(f"bare call returned {got} tokens, {n} asked")
        return took

    def run_harness() -> tuple[float, float]:
        t = time.perf_counter()
        m = measure(engine, ids, n)
        problem = check_counts(m)  # what a job does per request, the check included
        took = time.perf_counter() - t
        if problem:
            raise RuntimeError(f"harness path: {problem}")
        return took, m.latency_s

    if harness_first:
        h = run_harness()
        return run_bare(), *h
    b = run_bare()
    return b, *run_harness()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--engine", required=True, choices=sorted(BARE))
    ap.add_argument("--options", type=json.loads, default=None, help="engine options (JSON); default CPU_OPTIONS")
    ap.add_argument("--bare", choices=sorted(BARE_VARIANTS), help="another plain call than the engine's default")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--min-pairs", type=int, default=54, help="at least this many pairs (6 rounds of the 9 prompts): stopping at the first interval that excludes 1 would overstate the certainty")
    ap.add_argument("--max-pairs", type=int, default=2000)
    ap.add_argument("--budget-s", type=float, default=600, help="stop starting pairs after this many seconds")
    ap.add_argument("--prompts", default=str(REPO / "config/prompts/latency-9-prompts.jsonl"))
    a = ap.parse_args()

    art = Path(a.artifact)
    options = a.options if a.options is not None else CPU_OPTIONS[a.engine]
    options = engines.resolved(a.engine, options)
    engine = engines.create(a.engine)
    loaded = engine.load(art, manifest.verify(art), options)
    encoded = [engine.encode(p["prompt"]) for p in prompts.load(a.prompts)]
    bare = BARE_VARIANTS[a.bare] if a.bare else BARE[a.engine]
    for ids in encoded:  # warm-up of both paths on every prompt (first-use costs per shape), not counted
        timed_pair(engine, bare, ids, a.tokens, False)
    start, pairs = time.perf_counter(), []
    while len(pairs) < a.max_pairs and not resolved([h / b for b, h, _ in pairs], a.min_pairs):
        if time.perf_counter() - start > a.budget_s and len(pairs) >= 2:
            break
        k = len(pairs)
        # prompt k mod P in round k // P: the order flips from prompt to prompt and, for each prompt, round to round
        harness_first = (k % len(encoded) + k // len(encoded)) % 2 == 1
        pairs.append(timed_pair(engine, bare, encoded[k % len(encoded)], a.tokens, harness_first))
    ratios = [h / b for b, h, _ in pairs]
    recorded = [r / b for b, _, r in pairs]
    mean, half = ci95(ratios)
    rmean, rhalf = ci95(recorded)
    print(json.dumps({
        "engine": a.engine, "bare": a.bare or a.engine, "artifact": art.name, "overhead_pct": round((mean - 1) * 100, 2),
        "ci95_pct": [round((mean - half - 1) * 100, 2), round((mean + half - 1) * 100, 2)],  # wall
        "resolved": resolved(ratios, a.min_pairs), "goal_pct": GOAL * 100,
        "meets_goal": mean + half <= 1 + GOAL, "pairs": len(pairs), "seconds": round(time.perf_counter() - start, 1),
        "recorded_overhead_pct": round((rmean - 1) * 100, 2),
        "recorded_ci95_pct": [round((rmean - rhalf - 1) * 100, 2), round((rmean + rhalf - 1) * 100, 2)],
        "recorded_meets_goal": rmean + rhalf <= 1 + GOAL,
        "pair_ratios": [round(r, 4) for r in ratios], "bare_s": [round(b, 4) for b, _, _ in pairs],
        "harness_s": [round(h, 4) for _, h, _ in pairs], "recorded_s": [round(r, 4) for _, _, r in pairs],
        "ratio_of_sums": round(sum(h for _, h, _ in pairs) / sum(b for b, _, _ in pairs), 4),
        "tokens": a.tokens, "prompts": len(encoded),
        "options": options, "runtime": loaded.runtime, "device": loaded.device_name,
        "engine_version": loaded.engine_version, "cpu_count": provenance.host().get("cpu_count"),
        "cpu_flags": provenance.host().get("cpu_flags"), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, default=str), flush=True)  # flushed: vLLM's shutdown may end the process before buffers are written


if __name__ == "__main__":
    main()
