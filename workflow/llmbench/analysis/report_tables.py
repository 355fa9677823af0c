"""The report's tables as HTML files (Snakemake's report embeds HTML; a CSV would only be a download).

Each table is a view of the merged Parquet files, with the same figures as latency.md and serving.md, grouped
by what a reader asks: speed (latency), quality, the physical limit (roofline), cost and energy, and what ran
where (environment). Numbers are formatted, never recomputed.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from llmbench.analysis.tables import json_obj

LATENCY_TABLES = ("latency", "quality", "roofline", "cost-energy", "environment")
STYLE = ("<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse} "
         "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right} th{background:#f3f3f3} "
         "td:nth-child(-n+2){text-align:left} p{max-width:70em}</style>")


def _line(s: pd.DataFrame) -> pd.Series:
    return s["artifact"] + " · " + s["engine"] + " / " + s["variant"] + " · " + s["scenario"]


def _fmt(v, digits: int = 3, scale: float = 1.0, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if pct:
        return f"{v:.1%}"
    return f"{v * scale:.{digits}g}"


def _ci(v, lo, hi, digits: int = 3, scale: float = 1.0) -> str:
    if pd.isna(v):
        return ""
    if pd.isna(lo) or pd.isna(hi):
        return _fmt(v, digits, scale)
    return f"{_fmt(v, digits, scale)} ({_fmt(lo, digits, scale)}–{_fmt(hi, digits, scale)})"


def latency_view(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "line": _line(s),
        "status": [st if st == "unverified" or v else f"{st}, INVALID" for st, v in zip(s["status"], s["valid"])],
        "requests (failed)": [f"{r} ({f})" for r, f in zip(s["requests"], s["failed"])],
        "tokens/s (95% CI)": [_ci(v, lo, hi) for v, lo, hi in zip(s["tokens_per_s"], s["tokens_per_s_ci_low"],
                                                                  s["tokens_per_s_ci_high"])],
        "tok/s per pass": [" / ".join(_fmt(v) for v in passes) for passes in s["tokens_per_s_by_pass"]],
        "CI overlaps": s["ci_overlaps"],
        "TTFT p50 / p90 ms": [f"{_fmt(a, 3, 1e3)} / {_fmt(b, 3, 1e3)}" for a, b in zip(s["ttft_p50_s"], s["ttft_p90_s"])],
        "TPOT p50 ms (95% CI)": [_ci(v, lo, hi, 3, 1e3) for v, lo, hi in zip(s["tpot_p50_s"], s["tpot_p50_ci_low_s"],
                                                                            s["tpot_p50_ci_high_s"])],
        "TPOT p90 ms": [_fmt(v, 3, 1e3) for v in s["tpot_p90_s"]],
        "ran as": s["ran_as"], "threads": s["threads"].astype("Int64").astype(str).replace("<NA>", ""),
        "device": s["device_name"], "note": s["note"],
    })


def quality_view(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "line": _line(s), "perplexity": [_fmt(v, 4) for v in s["perplexity"]],
        "PPL ratio": [_fmt(v, 4) for v in s["ppl_ratio"]],
        "KL mean / p99 (nats)": [f"{_fmt(a, 3)} / {_fmt(b, 3)}" if pd.notna(a) else "" for a, b in
                                 zip(s["kl_mean"], s["kl_p99"])],
        "TF agree": [_fmt(v, pct=True) for v in s["teacher_forced_agreement"]],
        "greedy agree@K": [_fmt(v, pct=True) for v in s["greedy_agreement"]],
        "measured by": s["quality_by"] + s["quality_borrowed"].map({True: " † (borrowed)", False: ""}),
        "why no KL": s["kl_note"],
    })


def roofline_view(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "line": _line(s), "decode tok/s": [_fmt(v) for v in s["decode_tokens_per_s"]],
        "limit tok/s (measured bw)": [_fmt(v) for v in s["roofline_tokens_per_s"]],
        "MBU (measured bw)": [r.mbu_flag or _fmt(r.mbu, pct=True) for r in s.itertuples()],
        "MBU (datasheet bw)": [_fmt(v, pct=True) for v in s["mbu_datasheet"]],
        "decode bytes (MB)": [_fmt(v, 4, 1e-6) for v in s["decode_bytes"]],
        "ideal TPOT ms": [_fmt(v, 3, 1e3) for v in s["ideal_tpot_s"]],
        "prefill GFLOPs": [_fmt(v, 3, 1e-9) for v in s["prefill_flops"]],
        "ideal prefill ms": [_fmt(v, 3, 1e3) for v in s["ideal_prefill_s"]],
        "MFU prefill": [_fmt(v, pct=True) for v in s["mfu_prefill"]],
        "KV bytes/token": s["kv_bytes_per_token"].astype("Int64").astype(str).replace("<NA>", ""),
        "KV MiB at max context": [_fmt(v, 3, 2**-20) + (f" ({int(c)} tok)" if pd.notna(c) else "")
                                  for v, c in zip(s["kv_bytes_at_context"].astype(float), s["max_context"].astype(float))],
        "peak FLOP/s source": s["peak_flops_source"],
    })


def cost_energy_view(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "line": _line(s), "US$/h": [_fmt(v) for v in s["usd_per_hour"]],
        "US$ / 1M output tokens": [_fmt(v) for v in s["usd_per_1m_output_tokens"]],
        "US$ / 1M input tokens": [_fmt(v) for v in s["usd_per_1m_input_tokens"]],
        "price source (date)": [f"{a} ({b})" if a else "" for a, b in zip(s["price_source"], s["price_date"])],
        "J / output token": [_fmt(v) for v in s["energy_j_per_output_token"]],
        "output tokens / J": [_fmt(v) for v in s["output_tokens_per_j"]],
        "idle W": [_fmt(v) for v in s["energy_idle_power_w"]],
        "energy counter": s["energy_method"], "why no energy figure": s["energy_note"],
    })


def environment_view(requests: pd.DataFrame) -> pd.DataFrame:
    first = requests.groupby(["model", "artifact", "engine", "variant", "scenario"], sort=True).head(1)
    hosts = [json_obj(h) for h in first["host"]]
    return pd.DataFrame({
        "line": _line(first).to_numpy(), "engine version": first["engine_version"].fillna("").to_numpy(),
        "device": first["device_name"].fillna("").to_numpy(),
        "host": [f"{h.get('cpu', '?')}, {h.get('cpu_count', '?')} cores, "
                 f"{(h.get('ram_total_bytes') or 0) / 2**30:.0f} GiB RAM, python {h.get('python', '?')}" for h in hosts],
        "GPU driver / CUDA": [_gpus(h.get("nvidia")) + (f"; torch CUDA {h['torch_cuda']}" if h.get("torch_cuda") else "")
                              for h in hosts],
        "env hash": first["env_hash"].fillna("").str[:16].to_numpy(),
        "libraries": [", ".join(f"{k} {v}" for k, v in sorted(json_obj(x).items())) for x in first["library_versions"]],
        "git commit": first["git_commit"].fillna("").to_numpy(),
        "bandwidth measured with": first["bandwidth_method"].fillna("").to_numpy(),
    })


def _gpus(nv: dict | None) -> str:
    if not nv:
        return "no NVIDIA driver"
    if nv.get("error"):
        return nv["error"]
    names = ", ".join(g["name"] for g in nv.get("gpus", []))
    return f"{names}: driver {nv.get('driver_version')}, CUDA (driver) {nv.get('cuda_driver_version')}"


def run_facts(summary: pd.DataFrame, requests: pd.DataFrame) -> str:
    """What every page states: the hardware, the versions, how many requests, which commit."""
    measured = summary[summary["status"] != "unverified"]
    n = sorted({int(r - f) for r, f in zip(measured["requests"], measured["failed"])})
    first = requests.groupby(["engine"], sort=True).head(1)
    versions = ", ".join(f"{e} {v}" for e, v in zip(first["engine"], first["engine_version"].fillna("?")))
    hosts = sorted({f"{h.get('cpu', '?')} ({h.get('cpu_count', '?')} cores)" for h in map(json_obj, requests["host"])})
    return (f"Measured on: {', '.join(sorted(set(summary['device_name'].dropna()))) or '?'}; host CPU: "
            f"{', '.join(hosts)}. Engines: {versions}. Successful measured requests per line: "
            f"{', '.join(map(str, n)) or 'none'} (warm-ups excluded); {len(summary) - len(measured)} unverified "
            f"line(s). Commit: {', '.join(sorted(set(summary['git_commit'].dropna())))}.")


def _page(title: str, view: pd.DataFrame, intro: str, facts: str = "") -> str:
    table = view.to_html(index=False, escape=True, na_rep="", border=0)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body><h3>{html.escape(title)}</h3><p>{html.escape(intro)}</p><p>{html.escape(facts)}</p>"
            f"{table}</body></html>\n")


INTROS = {
    "latency": "Warm-ups excluded; statistics over successful measured requests; 95% bootstrap intervals that "
               "resample the passes over the prompts, then the requests within each pass (one pass: the prompts "
               "only); 'CI overlaps' names the lines this run does not order. Unverified lines say why in 'note'.",
    "quality": "Quality per line, scored by the line's own engine where it can score († borrowed from "
               "'measured by' otherwise), relative to the reference line.",
    "roofline": "The physical limit beside the measured figure: bytes a batch-1 decode step reads at the "
                "bandwidth measured in the job (and the datasheet's, where the card is known); prefill FLOPs "
                "against the datasheet's dense peak in the dtype that ran.",
    "cost-energy": "Cost from config `pricing` (source and date shown), at batch 1; energy from the hardware's "
                   "counter over one window spanning all measured requests, minus idle.",
    "environment": "What ran where: engine and library versions, host, GPU driver and CUDA, env hash, commit.",
}


def write_latency(tables_dir: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = pd.read_parquet(tables_dir / "latency.parquet")
    requests = pd.read_parquet(tables_dir / "requests.parquet")
    views = {"latency": latency_view(summary), "quality": quality_view(summary), "roofline": roofline_view(summary),
             "cost-energy": cost_energy_view(summary), "environment": environment_view(requests)}
    facts = run_facts(summary, requests)
    out = []
    for name in LATENCY_TABLES:
        path = out_dir / f"{name}.html"
        path.write_text(_page(name, views[name], INTROS[name], facts))
        out.append(path)
    return out
