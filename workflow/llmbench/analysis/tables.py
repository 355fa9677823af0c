"""Merge per-job Parquet files into the final tables.

results/tables/requests.parquet  every request row (rows.REQUESTS), warm-ups flagged
results/tables/latency.parquet   one line per model × artifact × variant × scenario, warm-ups excluded (rows.SUMMARY)
results/tables/latency.md        the same as a markdown table, like the latency study's
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llmbench.analysis import quality, roofline
from llmbench.job import rows
from llmbench.provenance import atomic

GROUP = ["model", "artifact", "engine", "variant", "scenario"]

def load_requests(inputs: list[str | Path]) -> pd.DataFrame:
    tables = [pq.read_table(p) for p in inputs]
    for p, t in zip(inputs, tables):
        if t.schema.metadata.get(b"llmbench_schema_version") != str(rows.SCHEMA_VERSION).encode():
            raise ValueError(f"{p}: row schema version {t.schema.metadata.get(b'llmbench_schema_version')} "
                             f"!= {rows.SCHEMA_VERSION}; rerun that job")
    if not tables:
        return rows.SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def _host(text: str | None) -> dict:
    """A row's host facts (json); {} where a row has none."""
    try:
        return json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}


def hosts_note(df: pd.DataFrame) -> str:
    """One line per distinct host CPU in the rows: a reader comparing two tables sees why they differ."""
    seen = {}
    for text in df["host"].dropna().unique():
        h = _host(text)
        seen[(h.get("cpu", "?"), tuple(h.get("cpu_flags", [])), h.get("cpu_count", "?"))] = None
    return "".join(f"\nHost CPU: {cpu}, {n} cores, kernel-relevant flags: {' '.join(flags) or 'none recorded'}.\n"
                   for cpu, flags, n in seen)


def _roofline(first: pd.Series, ok: pd.DataFrame) -> dict:
    """A line's roofline columns (analysis/roofline.py): decode bytes, limit, MBU against the measured and,
    where the card is known, the datasheet bandwidth. An MBU over 1 is no figure: the line is flagged."""
    nan = float("nan")
    decode = 1 / ok["tpot_s"].median() if len(ok) else nan
    step = ok["decode_bytes"].median() if len(ok) and ok["decode_bytes"].notna().all() else nan
    bandwidth, devices = first["read_bandwidth_bytes_per_s"], first["bandwidth_devices"]
    if pd.isna(step) or pd.isna(bandwidth) or pd.isna(devices):
        return {"decode_tokens_per_s": decode, "decode_bytes": step, "roofline_tokens_per_s": nan, "mbu": nan,
                "mbu_flag": "", "datasheet_bandwidth_bytes_per_s": nan, "mbu_datasheet": nan}
    share = roofline.mbu(step, decode, bandwidth, int(devices))
    sheet = roofline.datasheet(first["device_name"])
    flagged = share > 1
    return {"decode_tokens_per_s": decode, "decode_bytes": step,
            "roofline_tokens_per_s": roofline.roofline_tokens_per_s(bandwidth, int(devices), step),
            "mbu": nan if flagged else share, "mbu_flag": roofline.MBU_FLAG if flagged else "",
            "datasheet_bandwidth_bytes_per_s": sheet[0] if sheet else nan,
            "mbu_datasheet": roofline.mbu(step, decode, sheet[0], int(devices)) if sheet and not flagged else nan}


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """The summary lines (columns: rows.SUMMARY_COLUMNS, the quality ones added by add_quality)."""
    measured = df[~df["warmup"]]
    out = []
    for key, g in measured.groupby(GROUP, sort=True):
        ok = g[g["success"]]
        first = g.iloc[0]
        unverified = first["status"] == "unverified"
        out.append({
            **dict(zip(GROUP, key)),
            "status": first["status"],
            "device_name": first["device_name"],
            "synthetic_weights": bool(first["synthetic_weights"]),
            "requests": 0 if unverified else len(g),
            "failed": 0 if unverified else int((~g["success"]).sum()),
            "note": first["error"] if unverified else "",
            "avg_latency_s": ok["latency_s"].mean(),
            "avg_output_tokens": ok["output_tokens"].mean(),
            "tokens_per_s": ok["output_tokens"].sum() / ok["latency_s"].sum() if len(ok) else float("nan"),
            "ttft_p50_s": ok["ttft_s"].quantile(0.5),
            "ttft_p90_s": ok["ttft_s"].quantile(0.9),
            "tpot_p50_s": ok["tpot_s"].quantile(0.5),
            "tpot_p90_s": ok["tpot_s"].quantile(0.9),
            "peak_memory_bytes": None if unverified else int(g["peak_memory_bytes"].max()),
            "artifact_bytes": int(first["artifact_bytes"]),
            "weight_bytes": None if unverified else first["weight_bytes"],
            "ran_as": first["ran_as"] or "",
            "threads": None if pd.isna(first["threads"]) else int(first["threads"]),
            **_roofline(first, ok),
            "memory_kind": first["memory_kind"],
            "cpu_flags": " ".join(_host(first["host"]).get("cpu_flags", [])),
            "runtime": first["runtime"],
            "artifact_hash": first["artifact_hash"],
            "git_commit": first["git_commit"],
        })
    return pd.DataFrame(out)


def add_quality(summary: pd.DataFrame, df: pd.DataFrame, quality_files: list, spec: dict) -> pd.DataFrame:
    """Join per-artifact quality and per-variant greedy agreement onto the summary lines."""
    for col in ("perplexity", "teacher_forced_agreement", "greedy_agreement", "first_divergence_p50"):
        summary[col] = float("nan")
    summary["quality_by"] = ""
    if not spec or summary.empty:
        return summary
    if quality_files:
        q = pd.concat([pd.read_parquet(f) for f in quality_files])
        q = q.set_index(["model", "artifact"])
        for i, line in summary.iterrows():
            key = (line["model"], line["artifact"])
            if key in q.index:
                summary.loc[i, "perplexity"] = q.loc[key, "perplexity"]
                summary.loc[i, "teacher_forced_agreement"] = q.loc[key, "teacher_forced_agreement"]
                summary.loc[i, "quality_by"] = q.loc[key, "variant"]
    k = int(spec["agreement_tokens"])
    measured = df[~df["warmup"] & df["success"] & (df["repeat"] == 0)]
    ref = measured[(measured["artifact"] == spec["reference_artifact"]) & (measured["variant"] == spec["reference_variant"])]
    for i, line in summary.iterrows():
        if line["synthetic_weights"]:
            continue
        ref_ids = ref[(ref["model"] == line["model"]) & (ref["scenario"] == line["scenario"])]
        ref_ids = dict(zip(ref_ids["prompt_id"], ref_ids["output_ids"]))
        mine = measured[(measured[GROUP] == line[GROUP]).all(axis=1)]
        pairs = [quality.greedy_agreement(list(ids), list(ref_ids[p]), k)
                 for p, ids in zip(mine["prompt_id"], mine["output_ids"]) if p in ref_ids]
        if pairs:
            summary.loc[i, "greedy_agreement"] = sum(a for a, _ in pairs) / len(pairs)
            summary.loc[i, "first_divergence_p50"] = pd.Series([f for _, f in pairs]).median()
    return summary


def _mbu_text(share: float, flag: str, sheet: float) -> str:
    """MBU as latency.md shows it: the flag instead of a figure over 100%, the datasheet figure beside."""
    if flag:
        return flag
    if pd.isna(share):
        return ""
    return f"{share:.0%}" + ("" if pd.isna(sheet) else f" ({sheet:.0%} of datasheet)")


def to_markdown(summary: pd.DataFrame, hosts: str = "") -> str:
    if summary.empty:
        return "No benchmark rows.\n"
    view = pd.DataFrame({
        "artifact": summary["artifact"],
        "engine / variant": summary["engine"] + " / " + summary["variant"],
        "scenario": summary["scenario"],
        "avg time (s)": summary["avg_latency_s"].round(2),
        "avg output tokens": summary["avg_output_tokens"].round(1),
        "tokens/s": summary["tokens_per_s"].round(1),
        "TTFT p50 / p90 (ms)": [f"{a * 1e3:.0f} / {b * 1e3:.0f}" for a, b in zip(summary["ttft_p50_s"], summary["ttft_p90_s"])],
        "TPOT p50 / p90 (ms)": [f"{a * 1e3:.1f} / {b * 1e3:.1f}" for a, b in zip(summary["tpot_p50_s"], summary["tpot_p90_s"])],
        "decode tok/s (limit)": [f"{a:.1f} ({b:.0f})" for a, b in zip(summary["decode_tokens_per_s"], summary["roofline_tokens_per_s"])],
        "MBU": [_mbu_text(m, f, d) for m, f, d in zip(summary["mbu"], summary["mbu_flag"], summary["mbu_datasheet"])],
        "peak mem (MiB)": (summary["peak_memory_bytes"].astype(float) / 2**20).round(0).astype("Int64"),
        "size as run (MiB)": (summary["weight_bytes"].astype(float) / 2**20).round(0).astype("Int64"),
        "on disk (MiB)": (summary["artifact_bytes"] / 2**20).round(0).astype(int),
        "ran as": summary["ran_as"],
        "threads": summary["threads"].astype("Int64"),
        "perplexity": summary["perplexity"].round(2),
        "TF agree": summary["teacher_forced_agreement"].round(3),
        "greedy agree@K": summary["greedy_agreement"].round(3),
        "1st diff p50": summary["first_divergence_p50"],
        "requests (failed)": [f"{r} ({f})" for r, f in zip(summary["requests"], summary["failed"])],
        "status": summary["status"] + summary["synthetic_weights"].map({True: ", synthetic", False: ""}),
        "device": summary["device_name"],
    })
    notes = ("\nWarm-up requests are excluded. tokens/s = output tokens / end-to-end time (TTFT included). "
             "Every engine generated exactly the requested number of tokens (jobs fail otherwise). "
             "perplexity: held-out text, per artifact; TF agree: teacher-forced argmax agreement with the "
             "reference artifact; greedy agree@K / 1st diff: generated tokens vs the reference variant's "
             "(empty: no quality figure, e.g. synthetic weights). decode tok/s = 1 / median TPOT; limit = read bandwidth "
             "measured in the same job × devices read in parallel / bytes one decode step reads (weight tensor bytes as "
             "run, minus the embedding rows a step does not gather where lm_head is not tied to them, plus the KV "
             "cache at the mean decode context); MBU = decode tok/s / limit (an MBU over 100% is flagged, never "
             "shown); of datasheet: the same against the card's datasheet peak bandwidth. size as run: weight "
             "tensor bytes as the engine ran them; on disk: the artifact's files; ran as: what the engine "
             "reports it ran; threads: CPU threads the engine computed with.\n")
    unverified = summary[summary["status"] == "unverified"]
    reasons = "".join(f"\n- **{r.engine} / {r.variant} on {r.artifact}: unverified.** {r.note}\n"
                      for r in unverified.itertuples())
    return view.to_markdown(index=False) + "\n" + notes + hosts + reasons


def merge(inputs: list[str | Path], out_dir: Path, quality_files: list | None = None,
          quality_spec: dict | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    df = load_requests(inputs)
    atomic.write_parquet(rows.REQUESTS.from_frame(df), out_dir / "requests.parquet")
    summary = add_quality(summarize(df), df, quality_files or [], quality_spec or {})
    atomic.write_parquet(rows.SUMMARY.from_frame(summary), out_dir / "latency.parquet")
    (out_dir / "latency.md").write_text(to_markdown(summary, hosts_note(df)))
