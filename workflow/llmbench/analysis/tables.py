"""Merge per-job Parquet files into the final tables.

results/tables/requests.parquet  every request row (schema.REQUESTS), warm-ups flagged
results/tables/latency.parquet   one line per model × artifact × variant × scenario, warm-ups excluded (schema.SUMMARY)
results/tables/latency.md        the same as a markdown table, like the latency study's
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llmbench.core import hardware, roofline, schema
from llmbench.analysis import intervals, pooled_bandwidth, quality
from llmbench.core import interference
from llmbench.provenance import atomic

GROUP = ["model", "artifact", "engine", "variant", "scenario"]

def load_requests(inputs: list[str | Path]) -> pd.DataFrame:
    tables = [pq.read_table(p) for p in inputs]
    for p, t in zip(inputs, tables):
        if t.schema.metadata.get(b"llmbench_schema_version") != str(schema.SCHEMA_VERSION).encode():
            raise ValueError(f"{p}: row schema version {t.schema.metadata.get(b'llmbench_schema_version')} "
                             f"!= {schema.SCHEMA_VERSION}; rerun that job")
    if not tables:
        return schema.SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def json_obj(text) -> dict:
    """A JSON-object column's value (host, runtime, model_shape, ...) as a dict; {} for an empty cell."""
    try:
        return json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}


def hosts_note(df: pd.DataFrame) -> str:
    """One line per distinct host CPU in the rows: a reader comparing two tables sees why they differ."""
    seen = {}
    for text in df["host"].dropna().unique():
        h = json_obj(text)
        seen[(h.get("cpu", "?"), tuple(h.get("cpu_flags", [])), h.get("cpu_count", "?"))] = None
    return "".join(f"\nHost CPU: {cpu}, {n} cores, kernel-relevant flags: {' '.join(flags) or 'none recorded'}.\n"
                   for cpu, flags, n in seen)


def _roofline(first: pd.Series, ok: pd.DataFrame) -> dict:
    """A line's roofline columns (core/roofline.py): decode bytes, limit, MBU against the measured and,
    where the card is known, the datasheet bandwidth. An MBU over 1 is no figure: the line is flagged."""
    nan = float("nan")
    decode = 1 / ok["tpot_s"].median() if len(ok) else nan
    step = round(ok["decode_bytes"].median()) if len(ok) and ok["decode_bytes"].notna().all() else nan
    bandwidth, devices = _bandwidth_used(first), first["bandwidth_devices"]
    probe = _probe_columns(first, bandwidth)
    if pd.isna(step) or pd.isna(bandwidth) or pd.isna(devices):
        return {"decode_tokens_per_s": decode, "decode_bytes": step, "roofline_tokens_per_s": nan, "ideal_tpot_s": nan,
                "mbu": nan, "mbu_flag": "", "datasheet_bandwidth_bytes_per_s": nan, "mbu_datasheet": nan, **probe}
    share = roofline.mbu(step, decode, bandwidth, int(devices))
    sheet = roofline.datasheet(first["device_name"])
    flagged = share > 1
    limit = roofline.roofline_tokens_per_s(bandwidth, int(devices), step)
    return {"decode_tokens_per_s": decode, "decode_bytes": step, "roofline_tokens_per_s": limit, "ideal_tpot_s": 1 / limit,
            "mbu": nan if flagged else share, "mbu_flag": roofline.MBU_FLAG if flagged else "",
            "datasheet_bandwidth_bytes_per_s": sheet[0] if sheet else nan,
            "mbu_datasheet": roofline.mbu(step, decode, sheet[0], int(devices)) if sheet and not flagged else nan,
            **probe}


def _bandwidth_used(first: pd.Series) -> float:
    """The pooled figure of the jobs that ran alike (analysis/pooled_bandwidth.py), else the job's own."""
    pooled = first.get("pooled_bandwidth")
    return first["read_bandwidth_bytes_per_s"] if pooled is None or pd.isna(pooled) else pooled


def _probe_columns(first: pd.Series, used: float) -> dict:
    probes = first.get("bandwidth_probes")
    jobs = first.get("pooled_jobs")
    return {"read_bandwidth_bytes_per_s": used,
            "bandwidth_probes": [] if probes is None else [float(b) for b in probes],
            "bandwidth_spread": first.get("pooled_spread", float("nan")),
            "bandwidth_pooled_jobs": 0 if jobs is None or pd.isna(jobs) else int(jobs),
            "bandwidth_flag": first.get("bandwidth_flag") or ""}


def _number(first: pd.Series, key: str) -> float | None:
    """A line's numeric cell as a float; None where the column is absent or the cell empty."""
    v = first.get(key)
    return None if v is None or pd.isna(v) else float(v)


def _devices(first: pd.Series) -> int:
    n = _number(first, "bandwidth_devices")
    return 1 if n is None else int(n)


def _prefill(first: pd.Series, ok: pd.DataFrame) -> dict:
    """Prefill against the card's datasheet peak (core/hardware.py) in the dtype the engine ran: FLOPs of
    the prompt (roofline.prefill_flops, median over requests), the ideal prefill time and MFU (FLOPs / TTFT /
    peak, median over requests). Empty where the model shape, the card or the dtype is unknown (every CPU)."""
    nan = float("nan")
    out = {"prefill_flops": nan, "ideal_prefill_s": nan, "mfu_prefill": nan, "peak_flops_per_s": nan,
           "peak_flops_source": ""}
    shape = json_obj(first.get("model_shape"))
    if not shape or ok.empty:
        return out
    flops = ok["input_tokens"].map(lambda t: roofline.prefill_flops(shape, int(t)))
    out["prefill_flops"] = float(flops.median())
    peak = hardware.peak_flops(first.get("device_name"), json_obj(first.get("runtime")).get("dtype"))
    if peak is None:
        return out
    devices = _devices(first)
    out.update(peak_flops_per_s=peak[0], peak_flops_source=peak[1],
               mfu_prefill=float((flops / ok["ttft_s"] / (peak[0] * devices)).median()))
    weights, bandwidth = _number(first, "weight_bytes"), _number(first, "read_bandwidth_bytes_per_s")
    if weights is not None and bandwidth is not None:
        out["ideal_prefill_s"] = roofline.ideal_prefill_s(out["prefill_flops"], peak[0], weights, bandwidth, devices)
    return out


def _kv(first: pd.Series, ok: pd.DataFrame) -> dict:
    """KV-cache bytes per token of context, and at the longest context of the line's requests."""
    per = _number(first, "kv_bytes_per_token")
    per = None if per is None else int(per)
    if per is None or ok.empty:
        return {"kv_bytes_per_token": per, "kv_bytes_at_context": None, "max_context": None}
    context = int((ok["input_tokens"] + ok["output_tokens"]).max())
    return {"kv_bytes_per_token": per, "kv_bytes_at_context": per * context, "max_context": context}


def _energy(first: pd.Series, g: pd.DataFrame) -> dict:
    """J per output token above idle over the job's one measured window (core/energy.py): (window energy - idle
    power × window) / the output tokens of the window's successful requests (a failed request's tokens are no
    output; its energy stays in the window, and the note says so)."""
    nan = float("nan")
    joules, idle, window = (_number(first, k) for k in ("energy_j", "idle_power_w", "energy_window_s"))
    out = {"energy_j_per_output_token": nan, "output_tokens_per_j": nan,
           "energy_idle_power_w": nan if idle is None else idle,
           "energy_method": first.get("energy_method") or "", "energy_note": first.get("energy_note") or ""}
    tokens = g.loc[g["success"], "output_tokens"].fillna(0).sum()
    if joules is None or idle is None or window is None or not tokens:
        return out
    failed = int((~g["success"]).sum())
    if failed:
        out["energy_note"] = (f"the window includes the energy of {failed} failed request(s), whose tokens are not "
                              "counted: an upper bound per successful token")
    above = joules - idle * window
    if above <= 0:
        out["energy_note"] = (f"the window's energy ({joules:.1f} J) is not above the idle baseline "
                              f"({idle:.1f} W × {window:.1f} s): no figure")
        return out
    out.update(energy_j_per_output_token=above / tokens, output_tokens_per_j=tokens / above)
    return out


def price_for(pricing: list[dict], device_name: str | None) -> dict | None:
    """The pricing entry of that exact device name (config `pricing`), else None."""
    key = device_name.strip().lower() if isinstance(device_name, str) else ""
    return next((p for p in pricing or [] if p["device"].strip().lower() == key), None)


def _cost(first: pd.Series, ok: pd.DataFrame, pricing: list[dict]) -> dict:
    """US$ per 1M output tokens at the line's decode time (latency - TTFT) and per 1M input tokens at its prefill
    time (TTFT), so that each second of device time is charged once, batch 1, one request at a time; × devices for
    tensor parallel."""
    nan = float("nan")
    price = price_for(pricing, first.get("device_name"))
    out = {"usd_per_hour": nan, "price_source": "", "price_date": "", "usd_per_1m_output_tokens": nan,
           "usd_per_1m_input_tokens": nan}
    if price is None or ok.empty:
        return out
    devices = _devices(first)
    usd_per_s = price["usd_per_hour"] * devices / 3600
    out.update(usd_per_hour=price["usd_per_hour"] * devices, price_source=price["source"], price_date=price["date"],
               usd_per_1m_output_tokens=usd_per_s * 1e6 * (ok["latency_s"] - ok["ttft_s"]).sum() / ok["output_tokens"].sum(),
               usd_per_1m_input_tokens=usd_per_s * 1e6 * ok["ttft_s"].sum() / ok["input_tokens"].sum())
    return out


CI_RESAMPLES = intervals.RESAMPLES   # bootstrap resamples per interval
CI_SEED = intervals.SEED             # fixed: the same rows always give the same interval


def bootstrap_ci(values: dict[str, np.ndarray], stat, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over requests taken as independent (serving points, whose
    requests run in one window): every resample draws the requests (rows of ``values``, arrays of equal length)
    with replacement; ``stat`` maps resampled arrays (resamples × n) to one value per resample. (nan, nan) with
    fewer than 2 requests. Latency lines use intervals.hierarchical_ci (passes, then requests)."""
    n = len(next(iter(values.values())))
    if n < 2:
        return float("nan"), float("nan")
    idx = np.random.default_rng(CI_SEED).integers(0, n, size=(CI_RESAMPLES, n))
    got = stat(**{k: v[idx] for k, v in values.items()})
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(got, [tail, 100 - tail])
    return float(low), float(high)


SPEED_KEYS = ("avg_latency_s", "avg_output_tokens", "tokens_per_s", "ttft_p50_s", "ttft_p90_s", "tpot_p50_s",
              "tpot_p90_s", "tokens_per_s_ci_low", "tokens_per_s_ci_high", "tpot_p50_ci_low_s", "tpot_p50_ci_high_s")


def tokens_per_s_by_pass(ok: pd.DataFrame) -> list[float]:
    """tokens/s of each pass (repeat) of the successful requests, in pass order."""
    return [float(g["output_tokens"].sum() / g["latency_s"].sum()) for _, g in ok.groupby("repeat", sort=True)]


def _speed(ok: pd.DataFrame) -> dict:
    """The latency statistics of a line, over its successful measured requests only; intervals resample passes,
    then requests within each pass (analysis/intervals.py)."""
    if ok.empty:
        return {**{k: float("nan") for k in SPEED_KEYS}, "passes": 0, "tokens_per_s_by_pass": []}
    passes = ok["repeat"].to_numpy()
    tps = intervals.hierarchical_ci({"out": ok["output_tokens"].to_numpy(float), "lat": ok["latency_s"].to_numpy(float)},
                                    passes, intervals.ratio_of_sums)
    timed = ok.dropna(subset=["tpot_s"])
    tpot = timed["tpot_s"]
    tpot_ci = intervals.hierarchical_ci({"t": tpot.to_numpy(float)}, timed["repeat"].to_numpy(), intervals.median) \
        if len(tpot) else (float("nan"), float("nan"))
    return {
        "avg_latency_s": ok["latency_s"].mean(),
        "avg_output_tokens": ok["output_tokens"].mean(),
        "tokens_per_s": ok["output_tokens"].sum() / ok["latency_s"].sum(),
        "tokens_per_s_ci_low": tps[0], "tokens_per_s_ci_high": tps[1],
        "passes": int(ok["repeat"].nunique()), "tokens_per_s_by_pass": tokens_per_s_by_pass(ok),
        "ttft_p50_s": ok["ttft_s"].quantile(0.5),
        "ttft_p90_s": ok["ttft_s"].quantile(0.9),
        "tpot_p50_s": tpot.median(),
        "tpot_p50_ci_low_s": tpot_ci[0], "tpot_p50_ci_high_s": tpot_ci[1],
        "tpot_p90_s": tpot.quantile(0.9),
    }


def line_label(line) -> str:
    return f"{line['engine']} / {line['variant']} on {line['artifact']}"


def add_overlaps(summary: pd.DataFrame) -> pd.DataFrame:
    """``ci_overlaps``: the other lines of the same model, scenario and device whose tokens/s interval overlaps
    this line's (their order is not established by this run), '; '-separated."""
    summary["ci_overlaps"] = ""
    for i, a in summary.iterrows():
        same = summary[(summary["model"] == a["model"]) & (summary["scenario"] == a["scenario"])
                       & (summary["device_name"] == a["device_name"]) & (summary.index != i)]
        hits = [line_label(b) for _, b in same.iterrows() if intervals.overlap(
            (a["tokens_per_s_ci_low"], a["tokens_per_s_ci_high"]), (b["tokens_per_s_ci_low"], b["tokens_per_s_ci_high"]))]
        summary.at[i, "ci_overlaps"] = "; ".join(hits)
    return summary


def _interference(first: pd.Series) -> dict:
    """What else used the machine over the line's measured window (job/interference.py): others' CPU and steal in
    cores, NOISY when over the measured threshold (or another GPU process, a GPU slowdown), and what was seen."""
    seen = json_obj(first.get("interference"))
    if not seen:
        return {"outside_cores": float("nan"), "steal_cores": float("nan"), "noisy": False,
                "interference": "" if first["status"] == "unverified" else "not measured"}
    why = interference.verdict(seen)
    return {"outside_cores": seen.get("outside_cores", float("nan")), "steal_cores": seen.get("steal_cores", float("nan")),
            "noisy": bool(why), "interference": why}


def _note(g: pd.DataFrame, unverified: bool) -> str:
    if unverified:
        return g.iloc[0]["error"]
    failed = g[~g["success"]]
    if failed.empty:
        return ""
    first = failed.iloc[0]
    return (f"{len(failed)} of {len(g)} measured requests failed; the first (request {first['request_index']}, "
            f"prompt {first['prompt_id']}): {first['error']}")


def _line(key: tuple, g: pd.DataFrame, pricing: list[dict] | None = None) -> dict:
    ok = g[g["success"]]
    first = g.iloc[0]
    unverified = first["status"] == "unverified"
    failed = 0 if unverified else int((~g["success"]).sum())
    return {
        **dict(zip(GROUP, key)),
        "status": first["status"],
        "device_name": first["device_name"],
        "synthetic_weights": bool(first["synthetic_weights"]),
        "requests": 0 if unverified else len(g),
        "failed": failed,
        "valid": not unverified and failed == 0,
        "note": _note(g, unverified),
        **_speed(ok),
        "peak_memory_bytes": None if unverified or ok.empty else int(ok["peak_memory_bytes"].max()),
        "artifact_bytes": int(first["artifact_bytes"]),
        "weight_bytes": None if unverified else first["weight_bytes"],
        "ran_as": first["ran_as"] or "",
        "threads": None if pd.isna(first["threads"]) else int(first["threads"]),
        **_roofline(first, ok),
        **_prefill(first, ok),
        **_kv(first, ok),
        **_energy(first, g),
        **_interference(first),
        **_cost(first, ok, pricing or []),
        "memory_kind": first["memory_kind"],
        "cpu_flags": " ".join(json_obj(first["host"]).get("cpu_flags", [])),
        "runtime": first["runtime"],
        "artifact_hash": first["artifact_hash"],
        "git_commit": first["git_commit"],
    }


def summarize(df: pd.DataFrame, pricing: list[dict] | None = None) -> pd.DataFrame:
    """The summary lines (columns: schema.SUMMARY_COLUMNS, the quality ones added by add_quality). Failed
    requests are counted and left out of every statistic; warm-ups are left out altogether. ``pricing``:
    config `pricing` (cost columns)."""
    measured = pooled_bandwidth.pool(df[~df["warmup"]])
    lines = pd.DataFrame([_line(key, g, pricing) for key, g in measured.groupby(GROUP, sort=True)])
    return add_overlaps(lines) if len(lines) else lines


QUALITY_FIGURES = ("perplexity", "ppl_ratio", "kl_mean", "kl_p99", "teacher_forced_agreement")


def load_quality(quality_files: list, df: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The quality rows, refused when one is of another table version, scored another held-out text than
    the reference line, or measured an artifact other than the one the benchmark rows ran (a stale file)."""
    tables = []
    for f in quality_files:
        t = pq.read_table(f)
        if t.schema.metadata.get(b"llmbench_schema_version") != str(schema.QUALITY_VERSION).encode():
            raise ValueError(f"{f}: quality table version {t.schema.metadata.get(b'llmbench_schema_version')} "
                             f"!= {schema.QUALITY_VERSION}; rerun that quality job")
        tables.append(t.to_pandas().assign(file=str(f)))
    q = pd.concat(tables, ignore_index=True)
    ran = df.dropna(subset=["artifact_hash"]).groupby(["model", "artifact"])["artifact_hash"].unique()
    for r in q.itertuples():
        hashes = ran.get((r.model, r.artifact))
        if hashes is not None and list(hashes) != [r.artifact_hash]:
            raise ValueError(f"{r.file}: stale quality file: it scored artifact hash {r.artifact_hash}, the benchmark "
                             f"rows of {r.model}/{r.artifact} ran artifact hash {', '.join(map(str, hashes))}; rerun it")
        ref = q[(q["model"] == r.model) & (q["artifact"] == spec["reference_artifact"])
                & (q["variant"] == spec["reference_variant"])]
        if len(ref) and ref["heldout_sha256"].iloc[0] != r.heldout_sha256:
            raise ValueError(f"{r.file}: held-out text sha256 {r.heldout_sha256} differs from the reference line's "
                             f"{ref['heldout_sha256'].iloc[0]} ({ref['file'].iloc[0]}): the two are not comparable")
    return q


def _join_quality(summary: pd.DataFrame, q: pd.DataFrame) -> None:
    """Each line gets its own variant's quality row (scored or failed); a line without one (its engine cannot
    score) gets the first successfully scored variant of the same artifact, marked quality_borrowed and named in
    quality_by."""
    for i, line in summary.iterrows():
        same = q[(q["model"] == line["model"]) & (q["artifact"] == line["artifact"])]
        own = same[same["variant"] == line["variant"]]
        scored = same[same["status"] != "failed"]
        row = own.iloc[0] if len(own) else scored.iloc[0] if len(scored) else None
        if row is None:
            continue
        for col in QUALITY_FIGURES:
            summary.loc[i, col] = row[col]
        failed = row.get("status") == "failed"
        summary.loc[i, "quality_status"] = f"failed: {row['failure']}" if failed else "scored"
        summary.loc[i, "kl_note"] = row["kl_note"] or ""
        summary.loc[i, "quality_by"] = f"{row['engine']} / {row['variant']} ({row['precision']})"
        summary.loc[i, "quality_borrowed"] = not len(own)


def add_quality(summary: pd.DataFrame, df: pd.DataFrame, quality_files: list, spec: dict) -> pd.DataFrame:
    """Join each line's own quality row (its variant's) and its greedy agreement onto the summary lines."""
    for col in (*QUALITY_FIGURES, "greedy_agreement", "first_divergence_p50"):
        summary[col] = float("nan")
    summary["quality_by"], summary["kl_note"], summary["quality_borrowed"] = "", "", False
    summary["quality_status"] = ""
    if not spec or summary.empty:
        return summary
    if quality_files:
        _join_quality(summary, load_quality(quality_files, df, spec))
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


def quality_notes(summary: pd.DataFrame, quality_files: list, spec: dict) -> str:
    """latency.md's quality notes: borrowed figures (†) named, why KL is empty, what the reference is."""
    out = ""
    for r in summary[summary["quality_borrowed"]].itertuples():
        out += (f"\n† {r.engine} / {r.variant} on {r.artifact}: engine {r.engine} cannot score; its quality "
                f"figures were measured by {r.quality_by}.\n")
    for r in summary[summary["quality_status"].str.startswith("failed")].itertuples():
        out += (f"\nQuality of {r.engine} / {r.variant} on {r.artifact} not scored: {r.quality_status} (its speed "
                "figures stand).\n")
    for note in sorted(set(summary["kl_note"]) - {"", "the reference itself"}):
        out += f"\nKL empty where: {note}.\n"
    seen = set()
    for f in quality_files:
        r = pq.read_table(f, columns=["artifact", "dequantized_from"]).to_pylist()[0]
        origin = json.loads(r["dequantized_from"] or "{}")
        if origin.get("quantized") and r["artifact"] == spec["reference_artifact"] and r["artifact"] not in seen:
            seen.add(r["artifact"])
            out += (f"\nThe reference artifact {r['artifact']} is a dequantized {origin.get('file_type')} model "
                    f"({origin.get('file')}): the quality figures compared with it are relative to a quantized model, "
                    "not an unquantized one.\n")
    return out


def _with_ci(value: float, low: float, high: float, digits: int, scale: float = 1.0) -> str:
    """``41.2 (40.1–42.5)``: a figure and its interval; the figure alone where there is no interval."""
    if pd.isna(low) or pd.isna(high):
        return f"{value * scale:.{digits}f}"
    return f"{value * scale:.{digits}f} ({low * scale:.{digits}f}–{high * scale:.{digits}f})"


def _status(line) -> str:
    out = line["status"] + (", synthetic" if line["synthetic_weights"] else "")
    if line["status"] != "unverified" and not line["valid"]:
        out += f", INVALID: {line['failed']} failed"
    if line.get("bandwidth_flag"):
        out += ", bandwidth probe ≠ run"
    if line.get("noisy"):
        out += f", NOISY: others {line['outside_cores'] + line['steal_cores']:.2f} cores"
    return out


def _per_pass(passes) -> str:
    """``36.7 / 30.4``; one pass says so (its interval covers the prompts only)."""
    passes = list(passes) if passes is not None else []
    if len(passes) == 1:
        return f"{passes[0]:.1f} (1 pass)"
    return " / ".join(f"{v:.1f}" for v in passes)


def _others_text(outside: float, steal: float) -> str:
    return "" if pd.isna(outside) else f"{outside:.2f}" + (f" + steal {steal:.2f}" if steal >= 0.005 else "")


def interference_note(summary: pd.DataFrame) -> str:
    """Under the table: what was seen on the noisy lines, and what the threshold rests on."""
    out = ("\nothers' CPU: cores used by processes outside the job's process tree over its measured window (/proc), "
           f"steal added where the hypervisor took any; NOISY over {interference.NOISY_OUTSIDE_CORES} cores "
           f"({interference.THRESHOLD_BASIS}), or another process on the GPU, or GPU clocks slowed by heat or "
           "hardware.\n")
    for r in summary[summary["noisy"]].itertuples():
        out += f"\n- **{r.engine} / {r.variant} on {r.artifact}: NOISY.** {r.interference}\n"
    return out


def _notes(summary: pd.DataFrame) -> str:
    ok = summary[summary["status"] != "unverified"]
    counts = sorted({int(n) for n in ok["requests"] - ok["failed"]})
    n = ", ".join(map(str, counts)) or "none"
    return ("\nWarm-up requests are excluded. tokens/s = output tokens / end-to-end time (TTFT included). "
            "A request succeeds only when its engine returned without raising, exactly the requested number of "
            "tokens (its own count, the streamed count and the ids agree) and within the scenario's "
            "request_timeout_s; failed requests are counted in `requests (failed)`, kept as rows with their "
            "error, left out of every statistic, and mark their line INVALID. "
            f"Averages, percentiles and intervals are over a line's successful requests (n = requests - failed; "
            f"here n = {n}); p90 is linearly interpolated, so with n ≤ 11 it lies between the two largest values. "
            "In brackets: 95% bootstrap interval (2000 resamples, seed 0) that resamples the passes over the prompts "
            "(repeats), then the requests within each drawn pass: the passes are minutes apart and their requests "
            "share what the machine did meanwhile, so the pass, not the request, is the independent unit; with one "
            "pass the interval covers the prompts only, not pass-to-pass drift. It says nothing about other runs or "
            "machines. tok/s per pass: each pass's own figure. "
            "perplexity: held-out text, scored by the line's own engine and variant († where borrowed, see "
            "below); PPL ratio: perplexity / the reference line's; KL mean / p99: KL(reference || line) per "
            "position over the reference's top-K tokens plus one bucket for the rest (a lower bound of the full "
            "KL), mean and 99th percentile; TF agree: teacher-forced top-1 agreement with the reference line; "
            "greedy agree@K / 1st diff: generated tokens vs the reference variant's "
            "(empty: no quality figure, e.g. synthetic weights). decode tok/s = 1 / median TPOT; limit = read bandwidth "
            "(probed in each job with the threads and CPUs its engine ran, before the warm-ups and after the measured "
            "requests; one figure per machine and way of probing: the median of the probes of the run's jobs that "
            "ran alike, see below) × devices read in parallel / bytes one decode step reads (weight tensor bytes as "
            "run, minus the embedding rows a step does not gather where lm_head is not tied to them, plus the KV "
            "cache at the mean decode context); MBU = decode tok/s / limit (an MBU over 100% is flagged, never "
            "shown); of datasheet: the same against the card's datasheet peak bandwidth. size as run: weight "
            "tensor bytes as the engine ran them; on disk: the artifact's files; ran as: what the engine "
            "reports it ran; threads: CPU threads the engine computed with.\n")


def _reasons(summary: pd.DataFrame) -> str:
    """One line per line that is unverified (why) or invalid (how many failed, the first error)."""
    out = ""
    for r in summary.itertuples():
        if r.status == "unverified":
            out += f"\n- **{r.engine} / {r.variant} on {r.artifact}: unverified.** {r.note}\n"
        elif not r.valid:
            out += f"\n- **{r.engine} / {r.variant} on {r.artifact}: INVALID.** {r.note}\n"
    return out


def bandwidth_note(summary: pd.DataFrame) -> str:
    """Under the table: each bandwidth figure the limits divide by, its probes' spread and the lines that use it;
    the lines whose probe may not have read like their engine ran."""
    if "bandwidth_pooled_jobs" not in summary:
        return ""
    out = ""
    pooled = summary[summary["bandwidth_pooled_jobs"] > 0]
    for (bw, spread, jobs), g in pooled.groupby(["read_bandwidth_bytes_per_s", "bandwidth_spread",
                                                 "bandwidth_pooled_jobs"], sort=True):
        out += (f"\nRead bandwidth {bw / 1e9:.1f} GB/s (median of {jobs} job(s)' probes, spread {spread:.0%}) for: "
                + "; ".join(line_label(r) for _, r in g.iterrows()) + ".\n")
    for r in summary[summary["bandwidth_flag"] != ""].itertuples():
        out += f"\n- {r.engine} / {r.variant} on {r.artifact}: bandwidth probe ≠ run: {r.bandwidth_flag}.\n"
    return out


def overlap_note(summary: pd.DataFrame) -> str:
    """One line per pair of lines (same model, scenario, device) whose tokens/s intervals overlap."""
    pairs = []
    for _, a in summary.iterrows():
        for other in filter(None, (a.get("ci_overlaps") or "").split("; ")):
            pair = tuple(sorted((line_label(a), other)))
            if pair not in pairs:
                pairs.append(pair)
    if not pairs:
        return ""
    return ("\nOverlapping tokens/s intervals (this run does not establish which of the two is faster): "
            + "; ".join(f"{a} ~ {b}" for a, b in pairs) + ".\n")


def _mbu_text(share: float, flag: str, sheet: float) -> str:
    """MBU as latency.md shows it: the flag instead of a figure over 100%, the datasheet figure beside."""
    if flag:
        return flag
    if pd.isna(share):
        return ""
    return f"{share:.0%}" + ("" if pd.isna(sheet) else f" ({sheet:.0%} of datasheet)")


def to_markdown(summary: pd.DataFrame, hosts: str = "", quality_note: str = "") -> str:
    if summary.empty:
        return "No benchmark rows.\n"
    view = pd.DataFrame({
        "artifact": summary["artifact"],
        "engine / variant": summary["engine"] + " / " + summary["variant"],
        "scenario": summary["scenario"],
        "avg time (s)": summary["avg_latency_s"].round(2),
        "avg output tokens": summary["avg_output_tokens"].round(1),
        "tokens/s (95% CI)": [_with_ci(v, lo, hi, 1) for v, lo, hi in zip(
            summary["tokens_per_s"], summary["tokens_per_s_ci_low"], summary["tokens_per_s_ci_high"])],
        "tok/s per pass": [_per_pass(passes) for passes in summary["tokens_per_s_by_pass"]],
        "TTFT p50 / p90 (ms)": [f"{a * 1e3:.0f} / {b * 1e3:.0f}" for a, b in zip(summary["ttft_p50_s"], summary["ttft_p90_s"])],
        "TPOT p50 (95% CI) / p90 (ms)": [f"{_with_ci(a, lo, hi, 1, 1e3)} / {b * 1e3:.1f}" for a, lo, hi, b in zip(
            summary["tpot_p50_s"], summary["tpot_p50_ci_low_s"], summary["tpot_p50_ci_high_s"], summary["tpot_p90_s"])],
        "decode tok/s (limit)": [f"{a:.1f} ({b:.0f})" for a, b in zip(summary["decode_tokens_per_s"], summary["roofline_tokens_per_s"])],
        "MBU": [_mbu_text(m, f, d) for m, f, d in zip(summary["mbu"], summary["mbu_flag"], summary["mbu_datasheet"])],
        "peak mem (MiB)": (summary["peak_memory_bytes"].astype(float) / 2**20).round(0).astype("Int64"),
        "size as run (MiB)": (summary["weight_bytes"].astype(float) / 2**20).round(0).astype("Int64"),
        # an unverified artifact's files are what its build could write (commands, tokenizer), not the artifact
        "on disk (MiB)": (summary["artifact_bytes"].where(summary["status"] != "unverified") / 2**20).round(0)
                         .astype("Int64"),
        "ran as": summary["ran_as"],
        "threads": summary["threads"].astype("Int64"),
        "perplexity": [f"{p:.2f}{' †' if b else ''}" if p == p else "" for p, b in
                       zip(summary["perplexity"], summary["quality_borrowed"])],
        "PPL ratio": summary["ppl_ratio"].round(3),
        "KL mean / p99": [f"{m:.4f} / {p:.3f}" if m == m else "" for m, p in zip(summary["kl_mean"], summary["kl_p99"])],
        "TF agree": summary["teacher_forced_agreement"].round(3),
        "greedy agree@K": summary["greedy_agreement"].round(3),
        "1st diff p50": summary["first_divergence_p50"],
        "requests (failed)": [f"{r} ({f})" for r, f in zip(summary["requests"], summary["failed"])],
        "others' CPU (cores)": [_others_text(o, st) for o, st in zip(summary["outside_cores"], summary["steal_cores"])],
        "status": [_status(line) for _, line in summary.iterrows()],
        "device": summary["device_name"],
    })
    return (view.to_markdown(index=False) + "\n" + _notes(summary) + interference_note(summary)
            + bandwidth_note(summary) + overlap_note(summary) + quality_note + hosts + _reasons(summary))


def merge(inputs: list[str | Path], out_dir: Path, quality_files: list | None = None,
          quality_spec: dict | None = None, pricing: list[dict] | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    df = load_requests(inputs)
    atomic.write_parquet(schema.REQUESTS.from_frame(df), out_dir / "requests.parquet")
    summary = add_quality(summarize(df, pricing), df, quality_files or [], quality_spec or {})
    atomic.write_parquet(schema.SUMMARY.from_frame(summary), out_dir / "latency.parquet")
    note = quality_notes(summary, quality_files or [], quality_spec) if quality_spec else ""
    (out_dir / "latency.md").write_text(to_markdown(summary, hosts_note(df), note))
