"""The figures of one sweep point, with ``vllm bench serve``'s names and definitions (vllm/benchmarks/serve.py,
``calculate_metrics``), and the JSON document ``vllm bench serve --save-result`` writes for it.

Statistics come from the measured (not warm-up), successful records only; a failed request is counted in
``failed`` and left out of every latency statistic, as vLLM does. Unlike vLLM, a statistic with no values is
None, not 0, and a failed request's time in the per-request lists is None, not 0.0. Per request:
  output tokens  the server's usage.completion_tokens, else max_tokens when it finished with reason length, else
                 the sum of the chunks' tokens
  input tokens   the server's usage.prompt_tokens, else the caller's count
  TTFT           first chunk carrying text - send
  TPOT           (latency - TTFT) / (output tokens - 1), for requests with more than one output token
  ITL            every gap between consecutive chunks carrying text (per chunk, as vLLM counts it)
  E2EL           latency: last chunk carrying text - send (no client queue time); ``e2el_with_queue`` adds it
Percentiles: numpy's default (linear interpolation), as vLLM.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from llmbench.serving.client import PointResult, RequestRecord

SLO_KEYS = ("ttft", "tpot", "e2el")
SATURATED_BELOW = 0.9   # achieved / offered request rate under which a point is flagged saturated
STATS = ("ttft", "tpot", "itl", "e2el", "e2el_with_queue", "queue")
# our statistic names -> the names vLLM writes them under
VLLM_STAT_NAMES = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2el": "e2el",
                   "queue": "client_queue_time", "e2el_with_queue": "e2el_including_client_queue"}


def output_tokens(rec: RequestRecord) -> int:
    """The server's count of new tokens: its usage; without usage, finish_reason length says it stopped at
    max_tokens; else the streamed chunks' tokens (one per chunk, assumed)."""
    if rec.usage_completion_tokens is not None:
        return rec.usage_completion_tokens
    if rec.finish_reason == "length":
        return rec.max_tokens
    return sum(rec.chunk_tokens)


def input_tokens(rec: RequestRecord) -> int:
    return rec.usage_prompt_tokens if rec.usage_prompt_tokens is not None else rec.input_tokens


def tpot_s(rec: RequestRecord) -> float | None:
    """(latency - TTFT) / (n - 1) for n > 1 output tokens, else None."""
    n = output_tokens(rec)
    if n <= 1 or rec.latency_s is None or rec.ttft_s is None:
        return None
    return (rec.latency_s - rec.ttft_s) / (n - 1)


def itls_s(rec: RequestRecord) -> list[float]:
    t = rec.chunk_times_s
    return [b - a for a, b in zip(t, t[1:])]


def _p_word(p: float) -> str:
    return str(int(p)) if int(p) == p else str(p)


def stats_ms(name: str, values_s: list[float], percentiles=(50, 90, 99)) -> dict[str, float | None]:
    """mean_/median_/std_/p<P>_<name>_ms of values given in seconds; all None when there are none."""
    keys = [f"mean_{name}_ms", f"median_{name}_ms", f"std_{name}_ms"] + [f"p{_p_word(p)}_{name}_ms"
                                                                        for p in percentiles]
    if not values_s:
        return dict.fromkeys(keys)
    a = np.asarray(values_s, dtype=float) * 1000.0
    figures = [a.mean(), np.median(a), a.std()] + [np.percentile(a, p) for p in percentiles]
    return {k: float(v) for k, v in zip(keys, figures)}


def _good(rec: RequestRecord, slo_ms: dict[str, float]) -> bool:
    """Meets every SLO (ms). As vLLM: a request with one output token has TPOT 0 here."""
    got = {"ttft": rec.ttft_s, "tpot": tpot_s(rec) or 0.0, "e2el": rec.latency_s}
    return all(got[k] * 1000.0 <= v for k, v in slo_ms.items())


def _check_slo(slo_ms: dict[str, float] | None) -> None:
    unknown = set(slo_ms or {}) - set(SLO_KEYS)
    if unknown:
        raise ValueError(f"goodput SLO keys must be among {', '.join(SLO_KEYS)}; got {', '.join(sorted(unknown))}")


def max_output_tokens_per_s(ok: list[RequestRecord]) -> float | None:
    """vLLM's peak output rate: the output tokens whose chunks arrived in each whole second from the first
    send, the largest such count (each chunk weighted by its tokens, where vLLM counts a chunk as one)."""
    if not ok:
        return None
    start = min(r.send_s for r in ok)
    buckets: dict[int, int] = {}
    for r in ok:
        for t, n in zip(r.chunk_times_s, r.chunk_tokens):
            b = int(r.send_s + t - start)
            buckets[b] = buckets.get(b, 0) + n
    return float(max(buckets.values())) if buckets else None


def _count_mismatch(rec: RequestRecord) -> bool:
    counts = {sum(rec.chunk_tokens), rec.max_tokens}
    if rec.usage_completion_tokens is not None:
        counts.add(rec.usage_completion_tokens)
    return len(counts) > 1


def _rate(x: float, duration_s: float) -> float | None:
    return x / duration_s if duration_s > 0 else None


def _throughputs(ok: list[RequestRecord], result: PointResult, slo_ms: dict | None) -> dict[str, Any]:
    dur = result.duration_s
    n_in = sum(input_tokens(r) for r in ok)
    n_out = sum(output_tokens(r) for r in ok)
    good = sum(_good(r, slo_ms) for r in ok) if slo_ms else None
    return {"total_input_tokens": n_in, "total_output_tokens": n_out, "duration": dur,
            "request_throughput": _rate(len(ok), dur),
            "request_goodput": _rate(good, dur) if good is not None else None,
            "output_throughput": _rate(n_out, dur), "total_token_throughput": _rate(n_in + n_out, dur),
            "max_output_tokens_per_s": max_output_tokens_per_s(ok),
            "max_concurrent_requests": result.peak_concurrency}


def _validity(ok: list[RequestRecord], sent: int, result: PointResult) -> dict[str, Any]:
    """Whether the point measured the server: the offered rate was achieved (sent requests over the point's
    duration at least SATURATED_BELOW of a finite offered rate) and every request was sent; the client's own
    load; requests whose token counts disagree (kept in the statistics, counted here)."""
    achieved = _rate(sent, result.duration_s)
    short = (not math.isinf(result.request_rate) and achieved is not None
             and achieved < SATURATED_BELOW * result.request_rate)
    lag = result.loop_lag_s or {}
    return {"achieved_request_rate": achieved, "saturated": bool(short or result.not_sent > 0),
            "client_cpu_s": result.client_cpu_s, "loop_lag_mean_s": lag.get("mean"),
            "loop_lag_max_s": lag.get("max"), "loop_lag_p99_s": lag.get("p99"),
            "token_count_mismatches": sum(_count_mismatch(r) for r in ok)}


def point_metrics(result: PointResult, *, goodput_slo_ms: dict[str, float] | None = None,
                  percentiles=(50, 90, 99)) -> dict[str, Any]:
    """The point's figures (see the module docstring); ``goodput_slo_ms``: {"ttft"|"tpot"|"e2el": ms}."""
    _check_slo(goodput_slo_ms)
    measured = [r for r in result.records if not r.warmup]
    ok = [r for r in measured if r.success]
    values = {"ttft": [r.ttft_s for r in ok], "tpot": [t for t in map(tpot_s, ok) if t is not None],
              "itl": [g for r in ok for g in itls_s(r)], "e2el": [r.latency_s for r in ok],
              "e2el_with_queue": [r.queue_s + r.latency_s for r in ok], "queue": [r.queue_s for r in ok]}
    out: dict[str, Any] = {"completed": len(ok), "failed": len(measured) - len(ok),
                           "warmup": len(result.records) - len(measured), "not_sent": result.not_sent}
    out.update(_throughputs(ok, result, goodput_slo_ms))
    for name in STATS:
        out.update(stats_ms(name, values[name], percentiles))
    out.update(_validity(ok, len(measured), result))
    return out


def _per_request(measured: list[RequestRecord]) -> dict[str, list]:
    """vLLM's per-request lists (seconds), in request order; a failed request's times are None."""
    return {"input_lens": [input_tokens(r) for r in measured],
            "output_lens": [output_tokens(r) if r.success else 0 for r in measured],
            "ttfts": [r.ttft_s if r.success else None for r in measured],
            "itls": [itls_s(r) if r.success else [] for r in measured],
            "latencies": [r.latency_s if r.success else None for r in measured],
            "start_times": [r.send_s for r in measured],
            "queue_times": [r.queue_s for r in measured],
            "generated_texts": [r.text for r in measured],
            "errors": [r.error for r in measured]}


def _header(result: PointResult, n_prompts: int, meta: dict) -> dict[str, Any]:
    """vLLM's setup and traffic keys (``meta`` gives backend, label, model_id, tokenizer_id and may override
    the traffic ones); other ``meta`` keys are added as ``--metadata KEY=VALUE`` adds them."""
    rate = meta.get("request_rate", result.request_rate)
    doc = {"date": datetime.now().strftime("%Y%m%d-%H%M%S"), "endpoint_type": meta.get("backend"),
           "backend": meta.get("backend"), "label": meta.get("label"), "model_id": meta.get("model_id"),
           "tokenizer_id": meta.get("tokenizer_id"), "num_prompts": n_prompts}
    doc.update({k: v for k, v in meta.items() if k not in doc and k not in ("request_rate", "burstiness",
                                                                           "max_concurrency")})
    doc.update({"request_rate": "inf" if math.isinf(rate) else rate,
                "burstiness": meta.get("burstiness", result.burstiness),
                "max_concurrency": meta.get("max_concurrency", result.concurrency)})
    return doc


def save_result(metrics: dict[str, Any], result: PointResult, *, meta: dict) -> dict[str, Any]:
    """The document ``vllm bench serve --save-result --save-detailed`` writes, from ``point_metrics``'s output
    and the records (warm-ups left out, as vLLM's lists hold the measured requests only). ``rtfx`` (speech
    input) is None; our validity facts go under ``llmbench``."""
    measured = [r for r in result.records if not r.warmup]
    doc = _header(result, len(measured) + result.not_sent, meta)
    doc.update({k: metrics[k] for k in ("duration", "completed", "failed", "total_input_tokens",
                                        "total_output_tokens", "request_throughput", "request_goodput",
                                        "output_throughput", "total_token_throughput")})
    doc.update(_per_request(measured))
    doc.update({"max_output_tokens_per_s": metrics["max_output_tokens_per_s"],
                "max_concurrent_requests": metrics["max_concurrent_requests"], "rtfx": None})
    for k, v in metrics.items():  # mean_/median_/std_/p<P>_ <name>_ms, under vLLM's name
        prefix, _, rest = k.partition("_")
        if rest.endswith("_ms") and rest[:-3] in VLLM_STAT_NAMES:
            doc[f"{prefix}_{VLLM_STAT_NAMES[rest[:-3]]}_ms"] = v
    doc["llmbench"] = {k: metrics[k] for k in ("warmup", "not_sent", "achieved_request_rate", "saturated",
                                               "client_cpu_s", "loop_lag_mean_s", "loop_lag_max_s",
                                               "loop_lag_p99_s", "token_count_mismatches")}
    return doc
