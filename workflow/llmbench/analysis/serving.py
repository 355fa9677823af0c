"""Merge serving jobs' rows into the serving tables, every figure computed from the raw request rows.

results/tables/serving-requests.parquet  every request of every serving job (core/schema.SERVING_REQUESTS)
results/tables/serving.parquet           one line per job × sweep point (core/schema.SERVING)
results/tables/serving.md                the lines, then throughput against concurrency and latency against
                                         request rate, one small table per engine variant

Definitions are vLLM's (``vllm bench serve``): TTFT send -> first chunk; TPOT (e2e - TTFT) / (n - 1) per request;
ITL every gap between chunks; e2el send -> end. Failed requests are counted and excluded; warm-ups are excluded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llmbench.analysis.tables import hosts_note
from llmbench.provenance import atomic
from llmbench.core.schema import SERVING, SERVING_REQUESTS, SERVING_REQUESTS_VERSION

GROUP = ["model", "artifact", "engine", "variant", "scenario", "point"]


def load(inputs: list[str | Path]) -> pd.DataFrame:
    tables = [pq.read_table(p) for p in inputs]
    for p, t in zip(inputs, tables):
        if t.schema.metadata.get(b"llmbench_schema_version") != str(SERVING_REQUESTS_VERSION).encode():
            raise ValueError(f"{p}: serving row schema version {t.schema.metadata.get(b'llmbench_schema_version')} "
                             f"!= {SERVING_REQUESTS_VERSION}; rerun that job")
    if not tables:
        return SERVING_REQUESTS.schema.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def _stats(values, prefix: str) -> dict[str, float]:
    v = np.asarray(list(values), dtype=float) * 1000.0
    if not len(v):
        return {f"{prefix}_{s}_ms": math.nan for s in ("mean", "p50", "p90", "p99")}
    return {f"{prefix}_mean_ms": float(v.mean()), **{f"{prefix}_p{q}_ms": float(np.percentile(v, q))
                                                      for q in (50, 90, 99)}}


def _p50_ci(values, prefix: str) -> dict[str, float]:
    """95% bootstrap interval of the median (analysis/tables.bootstrap_ci), in ms."""
    from llmbench.analysis.tables import bootstrap_ci

    v = np.asarray(list(values), dtype=float) * 1000.0
    low, high = bootstrap_ci({"v": v}, lambda v: np.median(v, axis=1)) if len(v) else (math.nan, math.nan)
    return {f"{prefix}_p50_ci_low_ms": low, f"{prefix}_p50_ci_high_ms": high}


def _server_means(metrics_json: str) -> dict[str, float]:
    """The server's own mean TTFT / ITL over the point and its prefix-cache hit rate, from the counter deltas."""
    m = json.loads(metrics_json or "{}")

    def total(name: str) -> float:
        return sum(v for k, v in m.items() if k.split("{")[0] == name)

    def mean_ms(base: str) -> float:
        n = total(base + "_count")
        return total(base + "_sum") / n * 1000.0 if n else math.nan

    queries = total("vllm:prefix_cache_queries_total")
    itl = mean_ms("vllm:inter_token_latency_seconds")
    return {"server_ttft_mean_ms": mean_ms("vllm:time_to_first_token_seconds"),
            "server_itl_mean_ms": itl if not math.isnan(itl) else mean_ms("vllm:time_per_output_token_seconds"),
            "prefix_cache_hit_rate": total("vllm:prefix_cache_hits_total") / queries if queries else math.nan}


def _throughput(ok: pd.DataFrame, duration: float) -> dict[str, float]:
    out_tokens = ok["usage_completion_tokens"].fillna(ok["chunk_tokens_sum"]).sum()
    in_tokens = ok["usage_prompt_tokens"].fillna(ok["input_tokens"]).sum()
    per_s = (lambda x: x / duration) if duration and duration > 0 else (lambda x: math.nan)
    return {"completed": len(ok), "request_throughput": per_s(len(ok)), "output_throughput": per_s(out_tokens),
            "total_token_throughput": per_s(out_tokens + in_tokens)}


def _goodput(ok: pd.DataFrame, slo: dict | None, duration: float) -> float:
    if not slo or not duration:
        return math.nan
    good = pd.Series(True, index=ok.index)
    for key, col in (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("e2el", "latency_s")):
        if key in slo:
            good &= ok[col].fillna(0) * 1000.0 <= slo[key]
    return float(good.sum()) / duration


def _note(g: pd.DataFrame, runtime: dict) -> str:
    parts = []
    failed = g[~g["success"]]
    if len(failed):
        parts.append(f"{len(failed)} failed; the first (request {failed['request_index'].iloc[0]}): {failed['error'].iloc[0]}")
    flagged = g[g["success"] & (g["count_flag"] != "")]
    if len(flagged):
        parts.append(f"{len(flagged)} with token counts that disagree; the first: {flagged['count_flag'].iloc[0]}")
    parts += [str(runtime[k]) for k in ("concurrency", "prefix_reuse") if k in runtime]
    if runtime.get("artifact_checked") is False:
        parts.append(f"remote endpoint {runtime.get('url')}: llmbench cannot check that it serves this artifact "
                     "(the tokenizer of the artifact counts the tokens)")
    return "; ".join(parts)


def _unverified_line(key: tuple, first: pd.Series) -> dict:
    """A job whose server could not start here: no figures, the reason as its note."""
    line = {c.name: None for c in SERVING.columns}
    line.update(dict(zip(GROUP, key)))
    line.update({"status": "unverified", "device_name": first["device_name"], "requests": 0, "failed": 0,
                 "warmups": 0, "count_flags": 0, "valid": False, "saturated": False, "completed": 0,
                 "note": f"unverified: {first['error']}", "runtime": first["runtime"], "threads": first["threads"],
                 "artifact_hash": first["artifact_hash"], "git_commit": first["git_commit"]})
    return line


def _line(key: tuple, g: pd.DataFrame) -> dict:
    first, measured = g.iloc[0], g[~g["warmup"]]
    if first["status"] == "unverified":
        return _unverified_line(key, first)
    ok = measured[measured["success"]]
    duration = float(first["point_duration_s"]) if pd.notna(first["point_duration_s"]) else math.nan
    scenario_slo = json.loads(first["runtime"] or "{}").get("goodput_slo_ms")
    runtime = json.loads(first["runtime"] or "{}")
    rate = first["request_rate"]
    achieved = len(measured) / duration if duration else math.nan
    itls = [x for lst in ok["itl_s"] for x in lst]
    line = dict(zip(GROUP, key))
    line.update({
        "status": first["status"], "device_name": first["device_name"], "concurrency": first["concurrency"],
        "request_rate": rate, "requests": len(measured), "failed": int((~measured["success"]).sum()),
        "warmups": int(g["warmup"].sum()), "count_flags": int((ok["count_flag"] != "").sum()),
        "saturated": bool(first["not_sent"] > 0 or (math.isfinite(rate) and achieved < 0.9 * rate)),
        "note": _note(measured, runtime), "duration_s": duration, **_throughput(ok, duration),
        "request_goodput": _goodput(ok, scenario_slo, duration),
        **_stats(ok["ttft_s"], "ttft"), **_stats(ok["tpot_s"].dropna(), "tpot"), **_stats(itls, "itl"),
        **_p50_ci(ok["ttft_s"], "ttft"), **_p50_ci(ok["tpot_s"].dropna(), "tpot"),
        **_stats(ok["latency_s"], "e2el"),
        "e2el_with_queue_p50_ms": float(np.percentile((ok["latency_s"] + ok["queue_s"]) * 1000, 50)) if len(ok) else math.nan,
        "queue_p99_ms": float(np.percentile(ok["queue_s"] * 1000, 99)) if len(ok) else math.nan,
        "max_concurrent_requests": first["peak_concurrency"], "client_cpu_s": first["client_cpu_s"],
        "loop_lag_p99_ms": first["loop_lag_p99_s"] * 1000 if pd.notna(first["loop_lag_p99_s"]) else math.nan,
        **_server_means(first["server_metrics"]), "threads": first["threads"], "runtime": first["runtime"],
        "artifact_hash": first["artifact_hash"], "git_commit": first["git_commit"], "_devices": _devices(first)})
    line["valid"] = line["failed"] == 0 and line["requests"] > 0  # count flags are shown, not disqualifying
    return line


QUALITY = ("perplexity", "ppl_ratio", "kl_mean", "teacher_forced_agreement")


def quality_by_line(quality_files: list[str | Path]) -> dict[tuple[str, str, str], dict]:
    """(model, artifact, variant) -> its quality figures (results/quality/*.parquet: scored by that variant's
    own engine), with the artifact hash they were measured on."""
    out = {}
    for p in quality_files:
        found = pq.read_table(p).to_pandas()
        if found.empty:  # the line's engine did not run where its quality was to be scored (unverified)
            continue
        q = found.iloc[0]
        out[(q["model"], q["artifact"], q["variant"])] = {
            **{k: q[k] for k in QUALITY}, "artifact_hash": q["artifact_hash"],
            "quality_by": f"{q['engine']} / {q['variant']} ({q['precision']})"}
    return out


def _with_quality(line: dict, quality: dict[tuple[str, str, str], dict]) -> dict:
    q = quality.get((line["model"], line["artifact"], line["variant"]))
    if q is None:
        return {**line, **dict.fromkeys(QUALITY), "quality_by": None}
    if q["artifact_hash"] != line["artifact_hash"] and line["artifact_hash"] is not None:
        raise ValueError(f"the quality file of {line['artifact']} / {line['variant']} was measured on artifact "
                         f"{str(q['artifact_hash'])[:12]}…, the serving rows on {str(line['artifact_hash'])[:12]}…; "
                         "rerun the quality job")
    return {**line, **{k: q[k] for k in QUALITY}, "quality_by": q["quality_by"]}


def _devices(first) -> int:
    """Devices the server ran on: its tensor_parallel_size (the variant's options), else 1."""
    try:
        return max(1, int(json.loads(first.get("variant_options") or "{}").get("tensor_parallel_size") or 1))
    except (TypeError, ValueError):
        return 1


def _with_cost(line: dict, pricing: list[dict]) -> dict:
    """Cost per 1M output tokens at the point's measured throughput (config `pricing`, analysis/tables.py), the
    price × the devices the server ran on (tensor parallel: all its GPUs, as the latency table counts them)."""
    from llmbench.analysis.tables import price_for

    price = price_for(pricing, line.get("device_name"))
    rate = line.get("output_throughput")
    if price:
        price = {**price, "usd_per_hour": price["usd_per_hour"] * line.get("_devices", 1)}
    line["usd_per_hour"] = price["usd_per_hour"] if price else math.nan
    line["price_source"] = f"{price['source']} ({price['date']})" if price else ""
    line["usd_per_1m_output_tokens"] = (price["usd_per_hour"] / 3600 * 1e6 / rate
                                        if price and rate and not math.isnan(rate) else math.nan)
    return line


def summarize(df: pd.DataFrame, quality: dict | None = None, pricing: list[dict] | None = None) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(columns=[c.name for c in SERVING.columns])
    lines = [_with_cost(_with_quality(_line(k, g), quality or {}), pricing or [])
             for k, g in df.sort_values(["point_index", "request_index"]).groupby(GROUP, sort=False)]
    return pd.DataFrame(lines)[[c.name for c in SERVING.columns]]


def _fmt(x, digits: int = 1) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(r, metric: str, digits: int) -> str:
    """``p50 (low–high)``: the median and its 95% interval; the median alone without an interval."""
    low, high = r[f"{metric}_p50_ci_low_ms"], r[f"{metric}_p50_ci_high_ms"]
    mid = _fmt(r[f"{metric}_p50_ms"], digits)
    return mid if low is None or math.isnan(low) else f"{mid} ({_fmt(low, digits)}–{_fmt(high, digits)})"


MD_COLUMNS = {
    "artifact": "artifact", "engine_variant": "engine / variant", "point": "point", "requests_failed": "requests (failed)",
    "output_throughput": "output tok/s", "request_throughput": "req/s", "ttft": "TTFT p50 (95% CI) / p99 (ms)",
    "tpot": "TPOT p50 (95% CI) / p99 (ms)", "itl": "ITL p50 / p99 (ms)", "e2el": "e2e p50 / p99 (ms)",
    "queue": "queue p99 (ms)", "server": "server TTFT / ITL mean (ms)", "client_cpu_s": "client CPU (s)",
    "quality": "PPL ratio / KL mean / top-1",
    "cost": "US$ / 1M output tok",
    "flags": "status",
}


def _md_row(r) -> dict:
    if r["status"] == "unverified":
        return {**dict.fromkeys(MD_COLUMNS, ""), "artifact": r["artifact"], "point": "",
                "engine_variant": f"{r['engine']} / {r['variant']}", "flags": "unverified (see note)"}
    status = "valid" if r["valid"] else "INVALID"
    status += f", {r['count_flags']} count flags" if r["count_flags"] else ""
    status += ", saturated" if r["saturated"] else ""
    return {"artifact": r["artifact"], "engine_variant": f"{r['engine']} / {r['variant']}", "point": r["point"],
            "requests_failed": f"{r['requests']} ({r['failed']})", "output_throughput": _fmt(r["output_throughput"]),
            "request_throughput": _fmt(r["request_throughput"], 2),
            "ttft": f"{_ci(r, 'ttft', 0)} / {_fmt(r['ttft_p99_ms'], 0)}",
            "tpot": f"{_ci(r, 'tpot', 1)} / {_fmt(r['tpot_p99_ms'])}",
            "itl": f"{_fmt(r['itl_p50_ms'])} / {_fmt(r['itl_p99_ms'])}",
            "e2el": f"{_fmt(r['e2el_p50_ms'], 0)} / {_fmt(r['e2el_p99_ms'], 0)}", "queue": _fmt(r["queue_p99_ms"], 0),
            "server": f"{_fmt(r['server_ttft_mean_ms'], 0)} / {_fmt(r['server_itl_mean_ms'])}",
            "client_cpu_s": _fmt(r["client_cpu_s"], 2),
            "quality": (f"{_fmt(r['ppl_ratio'], 3)} / {_fmt(r['kl_mean'], 4)} / {_fmt(r['teacher_forced_agreement'], 3)}"
                        if r["quality_by"] else ""), "cost": _fmt(r["usd_per_1m_output_tokens"], 3), "flags": status}


def _sweep_tables(summary: pd.DataFrame) -> str:
    """Per engine variant and artifact: throughput against concurrency, latency against request rate."""
    out = []
    for (a, e, v, s), g in summary[summary["status"] != "unverified"].groupby(
            ["artifact", "engine", "variant", "scenario"], sort=False):
        t = g[["point", "output_throughput", "request_throughput", "ttft_p50_ms", "tpot_p50_ms", "e2el_p99_ms"]]
        out.append(f"\n### {a} / {e} / {v} ({s})\n\n" + t.rename(columns={
            "output_throughput": "output tok/s", "request_throughput": "req/s", "ttft_p50_ms": "TTFT p50 (ms)",
            "tpot_p50_ms": "TPOT p50 (ms)", "e2el_p99_ms": "e2e p99 (ms)"}).to_markdown(index=False, floatfmt=".1f"))
    return "\n".join(out)


def to_markdown(summary: pd.DataFrame, hosts: str = "") -> str:
    table = pd.DataFrame([_md_row(r) for _, r in summary.iterrows()], columns=list(MD_COLUMNS)).rename(columns=MD_COLUMNS)
    notes = [f"- **{r['engine']} / {r['variant']} on {r['artifact']}, {r['point']}**: {r['note']}"
             for _, r in summary.iterrows() if r["note"]]
    legend = ("\nWarm-ups excluded. Failed requests are counted in `requests (failed)` and excluded from every "
              "statistic (as `vllm bench serve` does); a line with a failure is INVALID; count flags: successful "
              "requests whose counts disagree somewhere (the server's usage or finish_reason, the streamed chunks, "
              "our recount of the text, the prompt length; the `count_flag` column says which); saturated: the achieved rate stayed below 90% of the offered rate. TTFT, TPOT, ITL, e2e: "
              "vLLM's definitions, e2e without the client's queue time (queue: waiting for a concurrency slot). "
              "server: the server's own /metrics over the point (vLLM only). client CPU: what the benchmark "
              "client itself spent. Quality: this artifact scored by this variant's own engine (quality table; "
              "the reference's ratio, KL and top-1 are empty).\n")
    return ("# Serving\n\n" + table.to_markdown(index=False) + "\n" + legend + hosts
            + ("\n" + "\n".join(notes) + "\n" if notes else "") + "\n## Sweeps\n" + _sweep_tables(summary) + "\n")


def merge(inputs: list[str | Path], out_dir: Path, quality_files: list[str | Path] = (),
          pricing: list[dict] | None = None) -> None:
    df = load(inputs)
    summary = summarize(df, quality_by_line(list(quality_files)), pricing)
    out_dir = Path(out_dir)
    atomic.write_parquet(SERVING_REQUESTS.from_frame(df), out_dir / "serving-requests.parquet")
    atomic.write_parquet(SERVING.from_frame(summary), out_dir / "serving.parquet")
    tmp = out_dir / ".serving.md.tmp"
    tmp.write_text(to_markdown(summary, hosts_note(df) if len(df) else ""))
    tmp.replace(out_dir / "serving.md")
