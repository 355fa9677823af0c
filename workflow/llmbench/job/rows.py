"""The per-request row: defined once here; every writer and reader uses it.

``SCHEMA_VERSION`` changes whenever a column is added, removed, renamed or changes meaning; the docs in
docs/table-schema.md are generated from this list (``python -m llmbench schema-doc``), and a test fails when
the two drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    unit: str
    meaning: str


COLUMNS: list[Column] = [
    # what was measured
    Column("request_index", pa.int32(), "", "order of the request within the job, warm-ups included"),
    Column("prompt_id", pa.string(), "", "id of the prompt in the scenario's prompt file"),
    Column("repeat", pa.int32(), "", "repeat number (0-based); warm-ups have repeat -1"),
    Column("warmup", pa.bool_(), "", "warm-up request: run, recorded, excluded from every aggregate"),
    Column("success", pa.bool_(), "", "the request produced exactly the requested tokens"),
    Column("error", pa.string(), "", "why the request failed (empty when it succeeded)"),
    Column("input_tokens", pa.int32(), "tokens", "prompt length after the chat template, as given to the engine"),
    Column("requested_output_tokens", pa.int32(), "tokens", "max_new_tokens = min_new_tokens asked of the engine"),
    Column("output_tokens", pa.int32(), "tokens", "new tokens the engine returned (its own count)"),
    Column("streamed_tokens", pa.int32(), "tokens", "new tokens the harness saw arrive one by one"),
    Column("retokenized_tokens", pa.int32(), "tokens", "output text re-encoded by the tokenizer (informational)"),
    Column("ttft_s", pa.float64(), "s", "request start to first new token on the host"),
    Column("latency_s", pa.float64(), "s", "request start to last new token"),
    Column("tpot_s", pa.float64(), "s", "(latency - ttft) / (output_tokens - 1): time per output token after the first"),
    Column("tokens_per_s", pa.float64(), "tokens/s", "output_tokens / latency_s (the latency study's figure)"),
    Column("itl_s", pa.list_(pa.float64()), "s", "inter-token latencies, one per token after the first"),
    Column("peak_memory_bytes", pa.int64(), "bytes", "peak memory during the request, of the kind in memory_kind"),
    Column("memory_kind", pa.string(), "", "cuda_max_allocated (GPU), cuda_max_allocated_sum_of_tp_workers, process_peak_rss (CPU: VmHWM reset per request) or process_tree_peak_rss (engine workers in child processes included)"),
    Column("output_text", pa.string(), "", "decoded new tokens"),
    Column("output_ids", pa.list_(pa.int32()), "token ids", "the new token ids the engine returned (for agreement)"),
    # what ran
    Column("model", pa.string(), "", "model key in config"),
    Column("artifact", pa.string(), "", "artifact key in config"),
    Column("engine", pa.string(), "", "engine adapter name"),
    Column("variant", pa.string(), "", "engine variant key in config (a named set of engine options)"),
    Column("scenario", pa.string(), "", "scenario key in config"),
    Column("status", pa.string(), "", "verified: measured here; unverified: could not run, see error"),
    Column("synthetic_weights", pa.bool_(), "", "random weights of a real shape: speed only, no quality figure"),
    Column("variant_options", pa.string(), "json", "options the variant asked for"),
    Column("runtime", pa.string(), "json", "what actually ran, read back from the engine (dtype, attention, compile, kernels)"),
    Column("weight_bytes", pa.int64(), "bytes", "bytes of weights read per decoded token (the engine's loaded weights, else the artifact's files)"),
    Column("read_bandwidth_bytes_per_s", pa.float64(), "bytes/s", "memory read bandwidth measured in this job on its device, before loading (roofline.py)"),
    Column("bandwidth_method", pa.string(), "", "how read_bandwidth_bytes_per_s was measured"),
    # provenance
    Column("model_hash", pa.string(), "sha256", "content hash of the model directory's manifest"),
    Column("artifact_hash", pa.string(), "sha256", "content hash of the artifact directory's manifest"),
    Column("artifact_bytes", pa.int64(), "bytes", "size of the artifact's files on disk (from its manifest)"),
    Column("engine_version", pa.string(), "", "version of the engine library"),
    Column("library_versions", pa.string(), "json", "versions of the libraries in the job's env"),
    Column("device", pa.string(), "", "device string the engine used (cpu, cuda:0)"),
    Column("device_name", pa.string(), "", "GPU name or CPU model"),
    Column("host", pa.string(), "json", "python, platform, cpu count, env prefix"),
    Column("env_hash", pa.string(), "sha256", "hash of the job's software env (its pinned requirements); empty when the driver's env ran it"),
    Column("git_commit", pa.string(), "", "commit of the workflow checkout (-dirty: uncommitted changes)"),
    Column("config_hash", pa.string(), "sha256", "hash of the job's config: model, artifact, variant, scenario"),
    Column("run_id", pa.string(), "", "one id per benchmark job"),
    Column("timestamp", pa.string(), "ISO 8601", "when the job started"),
    Column("schema_version", pa.int32(), "", "SCHEMA_VERSION of this table"),
]

SCHEMA = pa.schema([pa.field(c.name, c.type) for c in COLUMNS],
                   metadata={"llmbench_schema_version": str(SCHEMA_VERSION)})


def to_table(rows: list[dict]) -> pa.Table:
    missing = [c.name for c in COLUMNS if any(c.name not in r for r in rows)]
    extra = sorted({k for r in rows for k in r} - {c.name for c in COLUMNS})
    if missing or extra:
        raise ValueError(f"rows do not match the row schema: missing {missing}, unknown {extra}")
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def markdown_doc() -> str:
    lines = [f"# Per-request row schema (version {SCHEMA_VERSION})", "",
             "Generated from `workflow/llmbench/rows.py` by `python -m llmbench schema-doc`; do not edit by hand.",
             "Every file `results/runs/**.parquet` and `results/tables/requests.parquet` has these columns.", "",
             "| column | type | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.unit} | {c.meaning} |" for c in COLUMNS]
    return "\n".join(lines) + "\n"
