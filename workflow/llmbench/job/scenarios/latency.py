"""Latency scenario (seed 000): batch 1, greedy, exactly ``max_new_tokens`` new tokens per request.

The first ``warmup`` prompts are run first and flagged; they never enter an aggregate. Then every prompt is
run ``repeats`` times. Tokenization happens before the clock starts; the clock stops at the last token.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from llmbench.engines.base import Generation
from llmbench.job import memory, prompts, rows
from llmbench.job.rows import RequestResult


class TokenCountError(RuntimeError):
    pass


def measure(engine, input_ids: list[int], max_new_tokens: int) -> RequestResult:
    stamps: list[float] = []
    streamed: list[int] = []

    def on_token(tok: int) -> None:
        stamps.append(time.perf_counter())
        streamed.append(tok)

    memory.reset_peak_rss()
    engine.reset_peak_memory()
    t0 = time.perf_counter()
    gen = engine.generate(input_ids, max_new_tokens, on_token)
    t_end = time.perf_counter()
    if not isinstance(gen, Generation):
        raise TypeError(f"{type(engine).__name__}.generate returned {type(gen).__name__}; it must return "
                        "llmbench.engines.base.Generation(ids, engine_metrics)")
    device_peak = engine.peak_memory()
    if device_peak is None:
        device_peak = (memory.peak_rss_bytes(), "process_peak_rss")

    out_ids = list(gen.ids)
    n = len(out_ids)
    ttft = stamps[0] - t0 if stamps else None
    latency = (stamps[-1] if stamps else t_end) - t0
    text = engine.decode(out_ids)
    return RequestResult(
        input_tokens=len(input_ids),
        requested_output_tokens=max_new_tokens,
        output_tokens=n,
        streamed_tokens=len(streamed),
        retokenized_tokens=engine.count_tokens(text) if hasattr(engine, "count_tokens") else None,
        ttft_s=ttft,
        latency_s=latency,
        tpot_s=(latency - ttft) / (n - 1) if n > 1 and ttft is not None else None,
        tokens_per_s=n / latency if latency > 0 else None,
        itl_s=[b - a for a, b in zip(stamps, stamps[1:])],
        peak_memory_bytes=device_peak[0],
        memory_kind=device_peak[1],
        output_text=text,
        output_ids=out_ids,
        streamed_ids=streamed,
        engine_metrics=dict(gen.engine_metrics),
    )


def check_counts(m: RequestResult) -> str:
    """Empty string when the engine's count, the streamed count and the request agree; else why not."""
    want, got, streamed = m.requested_output_tokens, m.output_tokens, m.streamed_tokens
    if got != want:
        return f"engine returned {got} new tokens, {want} were requested"
    if streamed != want:
        return f"engine streamed {streamed} tokens but returned {got}; {want} were requested"
    if m.streamed_ids != m.output_ids:
        return "streamed token ids differ from the returned ones"
    return ""


def run(engine, spec: dict[str, Any], log=print) -> list[RequestResult]:
    sc = spec["scenario"]
    items = prompts.load(sc["prompts"])
    max_new = int(sc["max_new_tokens"])
    plan = [(p, -1, True) for p in items[: sc["warmup"]]]
    plan += [(p, r, False) for r in range(sc["repeats"]) for p in items]
    encoded = {str(p["id"]): engine.encode(p["prompt"]) for p in items}  # outside the timed region
    results = []
    for i, (p, repeat, warm) in enumerate(plan):
        m = measure(engine, encoded[str(p["id"])], max_new)
        problem = check_counts(m)
        m = dataclasses.replace(m, request_index=i, prompt_id=str(p["id"]), repeat=repeat, warmup=warm,
                                error=problem)
        results.append(m)
        log("row " + json.dumps(rows.log_fields(m)))
        log(f"[{i + 1}/{len(plan)}] prompt {p['id']}{' (warm-up)' if warm else ''}: "
            f"{m.output_tokens} tokens in {m.latency_s:.2f} s, TTFT {m.ttft_s or float('nan'):.3f} s, "
            f"{m.tokens_per_s or 0:.1f} tok/s")
        if problem:
            raise TokenCountError(f"request {i} (prompt {p['id']}): {problem}. Tokens/s would not be comparable, "
                                  "so the job stops; the rows so far are in the log.")
    return results
