"""The tables llmbench writes, each defined once here; every writer and reader uses these definitions.

requests  one row per request (:func:`request_row`, :func:`unverified_row`: the only ways to make one)
latency   the summary, one line per model × artifact × engine × variant × scenario (analysis/tables.py)
quality   one line per artifact scored for quality (analysis/quality.py)

Each table's version (``SCHEMA_VERSION``, ``SUMMARY_VERSION``, ``QUALITY_VERSION``) changes whenever one of its
columns is added, removed, renamed or changes meaning, and is written into the Parquet metadata. The docs in
docs/table-schema.md are generated from these lists (``python -m llmbench schema-doc``), and a test fails when
the two drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from llmbench.job.context import JobContext

SCHEMA_VERSION = 3   # requests: 2 added engine_metrics; 3 ran_as, threads, decode bytes and their parts, bandwidth_devices
SUMMARY_VERSION = 2  # 2: ran_as, threads, weight_bytes, decode_bytes, mbu_flag, datasheet MBU; roofline from decode bytes
QUALITY_VERSION = 1


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
    Column("engine_metrics", pa.string(), "json", "per-request facts the engine reported (engines.base.Generation), e.g. OpenVINO GenAI's own TTFT/TPOT, MLC chunks of several tokens, HF compile and weights after the first request; {} when none"),
    # what ran
    Column("model", pa.string(), "", "model key in config"),
    Column("artifact", pa.string(), "", "artifact key in config"),
    Column("engine", pa.string(), "", "engine adapter name"),
    Column("variant", pa.string(), "", "engine variant key in config (a named set of engine options)"),
    Column("scenario", pa.string(), "", "scenario key in config"),
    Column("status", pa.string(), "", "verified: measured here; unverified: could not run, see error"),
    Column("synthetic_weights", pa.bool_(), "", "random weights of a real shape: speed only, no quality figure"),
    Column("variant_options", pa.string(), "json", "options the variant asked for"),
    Column("runtime", pa.string(), "json", "what actually ran, read back from the engine after the run (dtype, attention, kernels, threads); per-request facts are in engine_metrics"),
    Column("ran_as", pa.string(), "", "what ran, in words, read back from the engine (e.g. dense fp32 after decompression, int4 CPUWNA16 kernel, GGUF bits per weight, OpenVINO runtime precisions)"),
    Column("threads", pa.int32(), "", "CPU threads the engine computed with, read back from it (empty: a GPU engine)"),
    Column("weight_bytes", pa.int64(), "bytes", "bytes of all weight tensors as the engine ran them (every TP worker's shard together), the engine's own figure after the run (Loaded.weight_bytes)"),
    Column("weight_bytes_method", pa.string(), "", "what the engine counted for weight_bytes"),
    Column("input_embedding_bytes", pa.int64(), "bytes", "the input embedding table as run (part of weight_bytes)"),
    Column("embedding_row_bytes", pa.int64(), "bytes", "one row of the embedding table: what a batch-1 decode step gathers"),
    Column("tied_embeddings", pa.bool_(), "", "lm_head is the input embedding table, so the whole table is read every step"),
    Column("kv_bytes_per_token", pa.int64(), "bytes", "KV-cache bytes per token of context, all layers, at the precision the engine keeps it"),
    Column("decode_bytes", pa.int64(), "bytes", "bytes one decode step of this request reads (roofline.decode_bytes): weight_bytes - the embedding rows not gathered (untied only) + kv_bytes_per_token × mean decode context (input + output / 2)"),
    Column("read_bandwidth_bytes_per_s", pa.float64(), "bytes/s", "memory read bandwidth measured in this job on one of its devices, before loading, with the engine's CPU threads (roofline.py)"),
    Column("bandwidth_method", pa.string(), "", "how read_bandwidth_bytes_per_s was measured"),
    Column("bandwidth_devices", pa.int32(), "", "devices read in parallel at that bandwidth (tensor parallel on N GPUs: N; CPU: 1)"),
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


SUMMARY_COLUMNS: list[Column] = [
    Column("model", pa.string(), "", "model key in config"),
    Column("artifact", pa.string(), "", "artifact key in config"),
    Column("engine", pa.string(), "", "engine adapter name"),
    Column("variant", pa.string(), "", "engine variant key in config"),
    Column("scenario", pa.string(), "", "scenario key in config"),
    Column("status", pa.string(), "", "verified: measured here; unverified: could not run, see note"),
    Column("device_name", pa.string(), "", "GPU name or CPU model"),
    Column("synthetic_weights", pa.bool_(), "", "random weights of a real shape: speed only, no quality figure"),
    Column("requests", pa.int64(), "", "measured requests (warm-ups excluded), successful or not; 0 for unverified lines"),
    Column("failed", pa.int64(), "", "requests that failed; they are counted here, never dropped silently"),
    Column("note", pa.string(), "", "for an unverified line: why nothing was measured"),
    Column("avg_latency_s", pa.float64(), "s", "mean end-to-end latency of successful requests"),
    Column("avg_output_tokens", pa.float64(), "tokens", "mean new tokens per successful request"),
    Column("tokens_per_s", pa.float64(), "tokens/s", "sum of output tokens / sum of latencies of successful requests (the study's tokens/s)"),
    Column("ttft_p50_s", pa.float64(), "s", "median time to first token"),
    Column("ttft_p90_s", pa.float64(), "s", "90th percentile time to first token"),
    Column("tpot_p50_s", pa.float64(), "s", "median time per output token after the first"),
    Column("tpot_p90_s", pa.float64(), "s", "90th percentile time per output token"),
    Column("peak_memory_bytes", pa.int64(), "bytes", "largest per-request peak (see memory_kind); empty for unverified lines"),
    Column("artifact_bytes", pa.int64(), "bytes", "artifact size on disk"),
    Column("weight_bytes", pa.int64(), "bytes", "weight tensor bytes as the engine ran them (the size as run; see the requests table)"),
    Column("ran_as", pa.string(), "", "what ran, in words, read back from the engine"),
    Column("threads", pa.int64(), "", "CPU threads the engine computed with, read back (empty: a GPU engine)"),
    Column("decode_tokens_per_s", pa.float64(), "tokens/s", "1 / median TPOT"),
    Column("decode_bytes", pa.float64(), "bytes", "median over successful requests of the bytes one decode step reads (roofline.decode_bytes)"),
    Column("roofline_tokens_per_s", pa.float64(), "tokens/s", "read bandwidth measured in the job × bandwidth devices / decode bytes: the memory limit at batch 1"),
    Column("mbu", pa.float64(), "share", "model bandwidth utilization: decode bytes × decode tok/s / (measured read bandwidth × bandwidth devices); empty when over 1 (see mbu_flag)"),
    Column("mbu_flag", pa.string(), "", "set when MBU came out over 100% (impossible: the bytes counted are wrong), instead of a figure"),
    Column("datasheet_bandwidth_bytes_per_s", pa.float64(), "bytes/s", "the card's peak from its datasheet where roofline.DATASHEET knows it (per device)"),
    Column("mbu_datasheet", pa.float64(), "share", "MBU against the datasheet peak instead of the measured bandwidth; empty where the card is unknown or MBU is flagged"),
    Column("memory_kind", pa.string(), "", "what peak_memory_bytes measured (see the requests table)"),
    Column("cpu_flags", pa.string(), "", "the host CPU's kernel-relevant flags, space-separated"),
    Column("runtime", pa.string(), "json", "runtime of the line's first request (what actually ran)"),
    Column("artifact_hash", pa.string(), "sha256", "content hash of the artifact directory's manifest"),
    Column("git_commit", pa.string(), "", "commit of the workflow checkout (-dirty: uncommitted changes)"),
    Column("perplexity", pa.float64(), "", "perplexity of the artifact on the held-out text (quality table); per artifact"),
    Column("teacher_forced_agreement", pa.float64(), "share", "argmax agreement with the reference artifact on the held-out text"),
    Column("greedy_agreement", pa.float64(), "share", "mean over prompts of identical tokens among the first K, vs the reference"),
    Column("first_divergence_p50", pa.float64(), "tokens", "median first position where the output differs from the reference's"),
    Column("quality_by", pa.string(), "", "variant whose engine scored the artifact for perplexity and agreement"),
]

QUALITY_COLUMNS: list[Column] = [
    Column("model", pa.string(), "", "model key in config"),
    Column("artifact", pa.string(), "", "artifact key in config"),
    Column("variant", pa.string(), "", "variant whose engine scored the artifact (one with score())"),
    Column("engine", pa.string(), "", "engine adapter name"),
    Column("reference_artifact", pa.string(), "", "artifact the agreement is measured against"),
    Column("perplexity", pa.float64(), "", "exp(mean NLL) over the held-out tokens, scored teacher forced in independent windows"),
    Column("scored_tokens", pa.int32(), "tokens", "positions scored"),
    Column("teacher_forced_agreement", pa.float64(), "share", "share of positions where this artifact's argmax equals the reference's; empty for the reference itself"),
    Column("argmax_ids", pa.list_(pa.int32()), "token ids", "argmax prediction per scored position (the reference's are compared against)"),
    Column("heldout_sha256", pa.string(), "sha256", "hash of the held-out text"),
    Column("artifact_hash", pa.string(), "sha256", "content hash of the artifact directory's manifest"),
    Column("engine_version", pa.string(), "", "version of the engine library"),
    Column("runtime", pa.string(), "json", "what actually ran, read back from the engine"),
    Column("seconds", pa.float64(), "s", "time spent scoring"),
]


@dataclass(frozen=True)
class Table:
    """One table's declared columns and version: the Parquet schema writers use and the docs show."""

    name: str
    title: str
    version: int
    files: str
    columns: list[Column]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns],
                         metadata={"llmbench_schema_version": str(self.version), "llmbench_table": self.name})

    def check(self, names) -> None:
        """ValueError unless ``names`` are exactly this table's columns."""
        missing = [c.name for c in self.columns if c.name not in names]
        extra = sorted(set(names) - {c.name for c in self.columns})
        if missing or extra:
            raise ValueError(f"rows do not match the {self.name} schema: missing {missing}, unknown {extra}")

    def from_records(self, records: list[dict]) -> pa.Table:
        for r in records:
            self.check(r)
        return pa.Table.from_pylist(records, schema=self.schema)

    def from_frame(self, df) -> pa.Table:
        """A pandas frame with exactly these columns, in any order, as a typed table."""
        if len(df) == 0:
            return self.schema.empty_table()
        self.check(list(df.columns))
        return pa.Table.from_pandas(df[[c.name for c in self.columns]], schema=self.schema, preserve_index=False)


REQUESTS = Table("requests", "Per-request rows", SCHEMA_VERSION,
                 "Every file `results/runs/**.parquet` and `results/tables/requests.parquet` has these columns.",
                 COLUMNS)
SUMMARY = Table("latency", "Summary lines", SUMMARY_VERSION,
                "`results/tables/latency.parquet`: one line per model × artifact × engine × variant × scenario, "
                "warm-ups excluded (`latency.md` shows a selection).", SUMMARY_COLUMNS)
QUALITY = Table("quality", "Quality per artifact", QUALITY_VERSION,
                "`results/quality/<model>/<artifact>.parquet`: one line per artifact scored.", QUALITY_COLUMNS)
TABLES = (REQUESTS, SUMMARY, QUALITY)
SCHEMA = REQUESTS.schema

# the columns of the one log line per request (a failed job's rows are only in its log)
LOGGED = ("request_index", "prompt_id", "repeat", "warmup", "success", "error", "input_tokens", "output_tokens",
          "streamed_tokens", "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "peak_memory_bytes")


@dataclass(frozen=True)
class RequestResult:
    """One request as the scenario measured it, and its place in the plan: a row's measured columns.
    ``streamed_ids`` (the ids ``on_token`` saw) is kept for the scenario's check and is not written;
    ``success`` is written as ``not error``."""

    input_tokens: int
    requested_output_tokens: int
    output_tokens: int
    streamed_tokens: int
    retokenized_tokens: int | None
    ttft_s: float | None
    latency_s: float
    tpot_s: float | None
    tokens_per_s: float | None
    itl_s: list[float]
    peak_memory_bytes: int | None
    memory_kind: str
    output_text: str
    output_ids: list[int]
    streamed_ids: list[int]
    engine_metrics: dict[str, Any] = field(default_factory=dict)
    request_index: int = 0
    prompt_id: str = ""
    repeat: int = 0
    warmup: bool = False
    error: str = ""


def _request_columns(r: RequestResult) -> dict[str, Any]:
    out = {f.name: getattr(r, f.name) for f in fields(r) if f.name != "streamed_ids"}
    out["engine_metrics"] = json.dumps(r.engine_metrics, sort_keys=True, default=str)
    out["success"] = not r.error
    return out


def _context_columns(ctx: JobContext) -> dict[str, Any]:
    return {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.metadata.get("column", True)}


def _decode_bytes(ctx: JobContext, r: RequestResult) -> int | None:
    from llmbench.analysis import roofline

    return roofline.decode_bytes(ctx.weight_bytes, ctx.input_embedding_bytes, ctx.embedding_row_bytes,
                                 ctx.tied_embeddings, ctx.kv_bytes_per_token,
                                 roofline.decode_context(r.input_tokens, r.output_tokens))


def request_row(ctx: JobContext, result: RequestResult) -> dict[str, Any]:
    """The row of one measured request: the job's context and the request's result."""
    row = {**_context_columns(ctx), **_request_columns(result), "decode_bytes": _decode_bytes(ctx, result),
           "status": "verified", "schema_version": SCHEMA_VERSION}
    REQUESTS.check(row)
    return row


def unverified_row(ctx: JobContext, reason: str) -> dict[str, Any]:
    """The one row of a job whose engine cannot run here: what was asked, why nothing was measured."""
    row: dict[str, Any] = {c.name: None for c in COLUMNS}
    row.update(_context_columns(ctx))
    row.update({"request_index": 0, "prompt_id": "", "repeat": 0, "warmup": False, "success": False,
                "error": reason, "requested_output_tokens": ctx.max_new_tokens, "itl_s": [], "output_ids": [],
                "engine_metrics": "{}", "status": "unverified", "schema_version": SCHEMA_VERSION})
    REQUESTS.check(row)
    return row


def log_fields(result: RequestResult) -> dict[str, Any]:
    """The ``LOGGED`` columns of a request's row."""
    columns = _request_columns(result)
    return {k: columns[k] for k in LOGGED}


def to_table(rows: list[dict]) -> pa.Table:
    return REQUESTS.from_records(rows)


def markdown_doc() -> str:
    lines = ["# Table schemas", "",
             "Generated from `workflow/llmbench/job/rows.py` by `python -m llmbench schema-doc`; do not edit by hand.",
             "Each table's version is in its Parquet metadata (`llmbench_schema_version`)."]
    for t in TABLES:
        lines += ["", f"## {t.title}: `{t.name}` (version {t.version})", "", t.files, "",
                  "| column | type | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.unit} | {c.meaning} |" for c in t.columns]
    return "\n".join(lines) + "\n"
