"""Latency scenario (seed 000): batch 1, greedy, exactly ``max_new_tokens`` new tokens per request.

Warm-ups come first and are flagged; they never enter an aggregate. ``warmup: all`` (the default) runs every
distinct prompt once, so each input shape the measurement meets has been seen before; ``warmup: N`` runs the
first N prompts. ``warmup_new_tokens`` (default: ``max_new_tokens``) shortens the warm-ups: the warm-up with the
longest input still generates ``max_new_tokens``, so every decode context length the measurement meets has
been run once, and the others only cover their prompt's prefill and first decode steps. Then every prompt is
run ``repeats`` times; the energy ``meter`` (core/energy.py), when given, spans the measured requests. A measured request that is the first of its input
length in the job (warm-ups counted) is flagged ``first_of_shape``. Tokenization happens before the clock
starts; the clock stops at the last token.

A request fails, and becomes a row with its error, when the engine raises, when the counts disagree
(:func:`check_counts`) or when it took longer than ``request_timeout_s``; the scenario goes on with the next.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from typing import Any

from llmbench.core.engine import Generation, has_hook
from llmbench.core import memory, prompts
from llmbench.job import rows
from llmbench.job.rows import RequestResult


def _raised(e: Exception) -> str:
    """What an engine's exception says, and where it came from (the innermost frame)."""
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"engine raised {type(e).__name__}: {e}{where}"


def _failed(input_ids: list[int], max_new_tokens: int, streamed: list[int], why: str) -> RequestResult:
    """A request the engine did not complete: what was asked and seen; measured fields None."""
    return RequestResult(
        input_tokens=len(input_ids), requested_output_tokens=max_new_tokens, output_tokens=None,
        streamed_tokens=len(streamed), retokenized_tokens=None, ttft_s=None, latency_s=None, tpot_s=None,
        tokens_per_s=None, itl_s=[], peak_memory_bytes=None, memory_kind=None, output_text=None, output_ids=[],
        streamed_ids=list(streamed), error=why)


def _result(engine, input_ids, max_new_tokens, gen: Generation, t0: float, t_end: float,
            stamps: list[float], streamed: list[int]) -> RequestResult:
    device_peak = engine.peak_memory()
    if device_peak is None:
        device_peak = (memory.peak_rss_bytes(), memory.peak_rss_kind())
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
        retokenized_tokens=engine.count_tokens(text) if has_hook(engine, "count_tokens") else None,
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


def measure(engine, input_ids: list[int], max_new_tokens: int) -> RequestResult:
    """One timed request. An exception from the engine makes a failed result (``error`` says what it was);
    a ``generate`` that returns no ``Generation`` is a broken adapter and raises TypeError."""
    stamps: list[float] = []
    streamed: list[int] = []

    def on_token(tok: int) -> None:
        stamps.append(time.perf_counter())
        streamed.append(tok)

    try:
        memory.reset_peak_rss()
        engine.reset_peak_memory()
        t0 = time.perf_counter()
        gen = engine.generate(input_ids, max_new_tokens, on_token)
        t_end = time.perf_counter()
    except Exception as e:  # noqa: BLE001 - any engine failure is this request's, recorded in its row
        return _failed(input_ids, max_new_tokens, streamed, _raised(e))
    if not isinstance(gen, Generation):
        raise TypeError(f"{type(engine).__name__}.generate returned {type(gen).__name__}; it must return "
                        "llmbench.core.engine.Generation(ids, engine_metrics)")
    try:
        return _result(engine, input_ids, max_new_tokens, gen, t0, t_end, stamps, streamed)
    except Exception as e:  # noqa: BLE001 - decode / count / memory probe of this request failed
        return _failed(input_ids, max_new_tokens, streamed, _raised(e))


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


def check_time(m: RequestResult, timeout_s: float | None) -> str:
    """Empty string unless the request took longer than ``timeout_s`` (judged after it finished: the engine
    is not interrupted)."""
    if timeout_s is None or m.latency_s is None or m.latency_s <= timeout_s:
        return ""
    return f"took {m.latency_s:.3f} s, over request_timeout_s = {timeout_s:g} (judged after the request finished)"


def warmup_prompts(items: list[dict], warmup: int | str) -> list[dict]:
    """``all``: every distinct prompt text once, in file order; an int N: the first N prompts."""
    if warmup == "all":
        first: dict[str, dict] = {}
        for p in items:
            first.setdefault(p["prompt"], p)
        return list(first.values())
    return items[: int(warmup)]


def warmup_lengths(warm: list[list[int]], max_new: int, warmup_new: int | None) -> list[int]:
    """New tokens of each warm-up (input ids given): ``max_new`` for the longest input (the first of them),
    ``warmup_new`` for the others; all ``max_new`` when ``warmup_new`` is None."""
    if warmup_new is None or not warm:
        return [max_new] * len(warm)
    longest = max(range(len(warm)), key=lambda i: (len(warm[i]), -i))
    return [max_new if i == longest else min(int(warmup_new), max_new) for i in range(len(warm))]


def _describe(m: RequestResult) -> str:
    if m.latency_s is None:
        return f"FAILED: {m.error}"
    text = (f"{m.output_tokens} tokens in {m.latency_s:.2f} s, TTFT {m.ttft_s or float('nan'):.3f} s, "
            f"{m.tokens_per_s or 0:.1f} tok/s")
    return text + (f"; FAILED: {m.error}" if m.error else "")


def run(engine, spec: dict[str, Any], log=print, meter=None, monitor=None) -> list[RequestResult]:
    """``meter`` (job/energy.py) and ``monitor`` (job/interference.py), when given, span the measured requests."""
    sc = spec["scenario"]
    items = prompts.load(sc["prompts"])
    max_new = int(sc["max_new_tokens"])
    timeout_s = sc.get("request_timeout_s")  # schema default null: no limit
    encoded = {str(p["id"]): engine.encode(p["prompt"]) for p in items}  # outside the timed region
    warm = warmup_prompts(items, sc["warmup"])
    lengths = warmup_lengths([encoded[str(p["id"])] for p in warm], max_new, sc.get("warmup_new_tokens"))
    plan = [(p, -1, True, n) for p, n in zip(warm, lengths)]
    plan += [(p, r, False, max_new) for r in range(sc["repeats"]) for p in items]
    results, shapes_seen = [], set()
    for i, (p, repeat, warm, n_new) in enumerate(plan):
        ids = encoded[str(p["id"])]
        if not warm and not any(not r.warmup for r in results):  # before the first measured request
            for window in (meter, monitor):
                if window is not None:
                    window.begin()
        m = measure(engine, ids, n_new)
        if monitor is not None and not warm:
            monitor.poll()
        problem = m.error or check_counts(m) or check_time(m, timeout_s)
        m = dataclasses.replace(m, request_index=i, prompt_id=str(p["id"]), repeat=repeat, warmup=warm,
                                first_of_shape=len(ids) not in shapes_seen, error=problem)
        shapes_seen.add(len(ids))
        results.append(m)
        log("row " + json.dumps(rows.log_fields(m)))
        log(f"[{i + 1}/{len(plan)}] prompt {p['id']}{' (warm-up)' if warm else ''}: {_describe(m)}")
    for window in (meter, monitor):
        if window is not None:
            window.end()
    return results
