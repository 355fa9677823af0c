"""The request rows, made only here (:func:`request_row`, :func:`unverified_row`) against the requests table
declared in core/schema.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from llmbench.core.schema import COLUMNS, REQUESTS, SCHEMA_VERSION

if TYPE_CHECKING:
    from llmbench.job.context import JobContext

# the columns of the one log line per request (a failed job's rows are only in its log)
LOGGED = ("request_index", "prompt_id", "repeat", "warmup", "first_of_shape", "success", "error", "input_tokens", "output_tokens",
          "streamed_tokens", "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "peak_memory_bytes")


@dataclass(frozen=True)
class RequestResult:
    """One request as the scenario measured it, and its place in the plan: a row's measured columns.
    ``streamed_ids`` (the ids ``on_token`` saw) is kept for the scenario's check and is not written;
    ``success`` is written as ``not error``."""

    input_tokens: int
    requested_output_tokens: int
    output_tokens: int | None        # None (like every measured field) when the engine raised
    streamed_tokens: int
    retokenized_tokens: int | None
    ttft_s: float | None
    latency_s: float | None
    tpot_s: float | None
    tokens_per_s: float | None
    itl_s: list[float]
    peak_memory_bytes: int | None
    memory_kind: str | None
    output_text: str | None
    output_ids: list[int]
    streamed_ids: list[int]
    engine_metrics: dict[str, Any] = field(default_factory=dict)
    request_index: int = 0
    prompt_id: str = ""
    repeat: int = 0
    warmup: bool = False
    first_of_shape: bool = False
    error: str = ""


def _request_columns(r: RequestResult) -> dict[str, Any]:
    out = {f.name: getattr(r, f.name) for f in fields(r) if f.name != "streamed_ids"}
    out["engine_metrics"] = json.dumps(r.engine_metrics, sort_keys=True, default=str)
    out["success"] = not r.error
    return out


def _context_columns(ctx: JobContext) -> dict[str, Any]:
    return {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.metadata.get("column", True)}


def _decode_bytes(ctx: JobContext, r: RequestResult) -> int | None:
    from llmbench.core import roofline

    if r.output_tokens is None:  # a failed request that returned nothing: no step to count
        return None
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
    row.update({"request_index": 0, "prompt_id": "", "repeat": 0, "warmup": False, "first_of_shape": False,
                "success": False,
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
