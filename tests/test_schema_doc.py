"""The table schemas are the stable interface for analyses: docs and versions must follow changes."""

import dataclasses
import hashlib

import pytest

from conftest import REPO
from llmbench.job import rows
from llmbench.core import schema
from llmbench.core.schema import SERVING_TABLES

ALL_TABLES = (*schema.TABLES, *SERVING_TABLES)

# Bump together with the table's version in rows.py: (version, sha256 of its column list). A column change
# without a version bump fails here; a version bump without regenerating docs/table-schema.md fails below.
PINNED = {
    "requests": (6, "92a459c86d4ccce2964055acd80825ccbcf81c07f19885c544cf6ced2e98a690"),
    "latency": (5, "79eb49cfc8b2460945a1c4ca9d4890bdeb9a7cd13e54ed24bac718a4bb5c208a"),
    "quality": (3, "fd01064a6a91d237b49002dc8964dab09ef4a24c95ff59927b4ad5f4a45d7b07"),
    "serving_requests": (2, "7353dd22aa44ed9206e084c2a83d37e1af70eba01234ed47e0bef9896d3c7aaf"),
    "serving": (3, "7568484a3c51276a7c4ef0b0c39417439c8ff6e4992c2ab009b29c53b0de6dd3"),
}


# The column names of each table at each version, oldest pinned first. Changing a table's columns means: bump
# its version in rows.py and add the new version's names here (the old entries stay: they say what readers of
# older files meet). A meaning or type change bumps the version too (the fingerprint above).
COLUMNS_BY_VERSION = {
    "requests": {
        2: (
            "request_index", "prompt_id", "repeat", "warmup", "success", "error", "input_tokens",
            "requested_output_tokens", "output_tokens", "streamed_tokens", "retokenized_tokens",
            "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "itl_s", "peak_memory_bytes",
            "memory_kind", "output_text", "output_ids", "engine_metrics", "model", "artifact", "engine",
            "variant", "scenario", "status", "synthetic_weights", "variant_options", "runtime",
            "weight_bytes", "read_bandwidth_bytes_per_s", "bandwidth_method", "model_hash",
            "artifact_hash", "artifact_bytes", "engine_version", "library_versions", "device",
            "device_name", "host", "env_hash", "git_commit", "config_hash", "run_id", "timestamp",
            "schema_version",
        ),
        3: (
            "request_index", "prompt_id", "repeat", "warmup", "first_of_shape", "success", "error",
            "input_tokens", "requested_output_tokens", "output_tokens", "streamed_tokens",
            "retokenized_tokens", "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "itl_s",
            "peak_memory_bytes", "memory_kind", "output_text", "output_ids", "engine_metrics", "model",
            "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
            "variant_options", "runtime", "ran_as", "threads", "weight_bytes", "weight_bytes_method",
            "input_embedding_bytes", "embedding_row_bytes", "tied_embeddings", "kv_bytes_per_token",
            "decode_bytes", "read_bandwidth_bytes_per_s", "bandwidth_method", "bandwidth_devices",
            "model_hash", "artifact_hash", "model_manifest_sha256", "artifact_manifest_sha256",
            "artifact_bytes", "engine_version", "library_versions", "device", "device_name", "host",
            "env_hash", "git_commit", "config_hash", "run_id", "timestamp", "schema_version",
        ),
        4: (
            "request_index", "prompt_id", "repeat", "warmup", "first_of_shape", "success", "error",
            "input_tokens", "requested_output_tokens", "output_tokens", "streamed_tokens",
            "retokenized_tokens", "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "itl_s",
            "peak_memory_bytes", "memory_kind", "output_text", "output_ids", "engine_metrics", "model",
            "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
            "variant_options", "runtime", "ran_as", "threads", "weight_bytes", "weight_bytes_method",
            "input_embedding_bytes", "embedding_row_bytes", "tied_embeddings", "kv_bytes_per_token",
            "decode_bytes", "read_bandwidth_bytes_per_s", "bandwidth_method", "bandwidth_devices",
            "model_shape", "energy_j", "energy_window_s", "idle_power_w", "energy_method",
            "energy_note", "model_hash", "artifact_hash", "model_manifest_sha256",
            "artifact_manifest_sha256", "artifact_bytes", "engine_version", "library_versions",
            "device", "device_name", "host", "env_hash", "git_commit", "config_hash", "run_id",
            "timestamp", "schema_version",
        ),
        5: (
            "request_index", "prompt_id", "repeat", "warmup", "first_of_shape", "success", "error",
            "input_tokens", "requested_output_tokens", "output_tokens", "streamed_tokens",
            "retokenized_tokens", "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "itl_s",
            "peak_memory_bytes", "memory_kind", "output_text", "output_ids", "engine_metrics",
            "model", "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
            "variant_options", "runtime", "ran_as", "threads", "weight_bytes",
            "weight_bytes_method", "input_embedding_bytes", "embedding_row_bytes",
            "tied_embeddings", "kv_bytes_per_token", "decode_bytes", "read_bandwidth_bytes_per_s",
            "bandwidth_method", "bandwidth_devices", "bandwidth_probes", "bandwidth_threads",
            "bandwidth_cpus", "bandwidth_flag", "model_shape", "energy_j", "energy_window_s",
            "idle_power_w", "energy_method", "energy_note", "interference", "model_hash",
            "artifact_hash", "model_manifest_sha256", "artifact_manifest_sha256", "artifact_bytes",
            "engine_version", "library_versions", "device", "device_name", "host", "env_hash",
            "git_commit", "config_hash", "run_id", "timestamp", "schema_version",
        ),
        6: (
            "request_index", "prompt_id", "repeat", "warmup", "first_of_shape", "success", "error",
            "input_tokens", "requested_output_tokens", "output_tokens", "streamed_tokens",
            "retokenized_tokens", "ttft_s", "latency_s", "tpot_s", "tokens_per_s", "itl_s",
            "peak_memory_bytes", "memory_kind", "output_text", "output_ids", "engine_metrics",
            "model", "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
            "variant_options", "runtime", "ran_as", "threads", "weight_bytes",
            "weight_bytes_method", "input_embedding_bytes", "embedding_row_bytes",
            "tied_embeddings", "kv_bytes_per_token", "decode_bytes", "read_bandwidth_bytes_per_s",
            "bandwidth_method", "bandwidth_devices", "bandwidth_probes", "bandwidth_threads",
            "bandwidth_cpus", "bandwidth_flag", "model_shape", "energy_j", "energy_window_s",
            "idle_power_w", "energy_method", "energy_note", "interference", "model_hash",
            "artifact_hash", "model_manifest_sha256", "artifact_manifest_sha256", "artifact_bytes",
            "engine_version", "library_versions", "device", "device_name", "host", "env_hash",
            "git_commit", "config_hash", "run_id", "timestamp", "schema_version",
        ),
    },
    "latency": {
        1: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name",
            "synthetic_weights", "requests", "failed", "note", "avg_latency_s", "avg_output_tokens",
            "tokens_per_s", "ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tpot_p90_s", "peak_memory_bytes",
            "artifact_bytes", "decode_tokens_per_s", "roofline_tokens_per_s", "mbu", "memory_kind",
            "cpu_flags", "runtime", "artifact_hash", "git_commit", "perplexity",
            "teacher_forced_agreement", "greedy_agreement", "first_divergence_p50", "quality_by",
        ),
        2: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name",
            "synthetic_weights", "requests", "failed", "valid", "note", "avg_latency_s",
            "avg_output_tokens", "tokens_per_s", "tokens_per_s_ci_low", "tokens_per_s_ci_high",
            "ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tpot_p50_ci_low_s", "tpot_p50_ci_high_s",
            "tpot_p90_s", "peak_memory_bytes", "artifact_bytes", "weight_bytes", "ran_as", "threads",
            "decode_tokens_per_s", "decode_bytes", "roofline_tokens_per_s", "mbu", "mbu_flag",
            "datasheet_bandwidth_bytes_per_s", "mbu_datasheet", "memory_kind", "cpu_flags", "runtime",
            "artifact_hash", "git_commit", "perplexity", "ppl_ratio", "kl_mean", "kl_p99", "kl_note",
            "teacher_forced_agreement", "greedy_agreement", "first_divergence_p50", "quality_by",
            "quality_borrowed",
        ),
        3: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name",
            "synthetic_weights", "requests", "failed", "valid", "note", "avg_latency_s",
            "avg_output_tokens", "tokens_per_s", "tokens_per_s_ci_low", "tokens_per_s_ci_high",
            "ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tpot_p50_ci_low_s", "tpot_p50_ci_high_s",
            "tpot_p90_s", "peak_memory_bytes", "artifact_bytes", "weight_bytes", "ran_as", "threads",
            "decode_tokens_per_s", "decode_bytes", "roofline_tokens_per_s", "mbu", "mbu_flag",
            "datasheet_bandwidth_bytes_per_s", "mbu_datasheet", "ideal_tpot_s", "prefill_flops",
            "peak_flops_per_s", "peak_flops_source", "ideal_prefill_s", "mfu_prefill",
            "kv_bytes_per_token", "max_context", "kv_bytes_at_context", "energy_j_per_output_token",
            "output_tokens_per_j", "energy_idle_power_w", "energy_method", "energy_note",
            "usd_per_hour", "price_source", "price_date", "usd_per_1m_output_tokens",
            "usd_per_1m_input_tokens", "memory_kind", "cpu_flags", "runtime", "artifact_hash",
            "git_commit", "perplexity", "ppl_ratio", "kl_mean", "kl_p99", "kl_note",
            "teacher_forced_agreement", "greedy_agreement", "first_divergence_p50", "quality_by",
            "quality_borrowed",
        ),
        4: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name",
            "synthetic_weights", "requests", "failed", "valid", "note", "avg_latency_s",
            "avg_output_tokens", "tokens_per_s", "tokens_per_s_ci_low", "tokens_per_s_ci_high",
            "passes", "tokens_per_s_by_pass", "ci_overlaps", "ttft_p50_s", "ttft_p90_s",
            "tpot_p50_s", "tpot_p50_ci_low_s", "tpot_p50_ci_high_s", "tpot_p90_s",
            "peak_memory_bytes", "artifact_bytes", "weight_bytes", "ran_as", "threads",
            "decode_tokens_per_s", "decode_bytes", "read_bandwidth_bytes_per_s", "bandwidth_probes",
            "bandwidth_spread", "bandwidth_pooled_jobs", "bandwidth_flag", "roofline_tokens_per_s",
            "mbu", "mbu_flag", "datasheet_bandwidth_bytes_per_s", "mbu_datasheet", "ideal_tpot_s",
            "prefill_flops", "peak_flops_per_s", "peak_flops_source", "ideal_prefill_s",
            "mfu_prefill", "kv_bytes_per_token", "max_context", "kv_bytes_at_context",
            "energy_j_per_output_token", "output_tokens_per_j", "energy_idle_power_w",
            "energy_method", "energy_note", "outside_cores", "steal_cores", "noisy", "interference",
            "usd_per_hour", "price_source", "price_date", "usd_per_1m_output_tokens",
            "usd_per_1m_input_tokens", "memory_kind", "cpu_flags", "runtime", "artifact_hash",
            "git_commit", "perplexity", "ppl_ratio", "kl_mean", "kl_p99", "kl_note",
            "teacher_forced_agreement", "greedy_agreement", "first_divergence_p50", "quality_by",
            "quality_status", "quality_borrowed",
        ),
        5: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name",
            "synthetic_weights", "requests", "failed", "valid", "note", "avg_latency_s",
            "avg_output_tokens", "tokens_per_s", "tokens_per_s_ci_low", "tokens_per_s_ci_high",
            "passes", "tokens_per_s_by_pass", "ci_overlaps", "ttft_p50_s", "ttft_p90_s",
            "tpot_p50_s", "tpot_p50_ci_low_s", "tpot_p50_ci_high_s", "tpot_p90_s",
            "peak_memory_bytes", "artifact_bytes", "weight_bytes", "ran_as", "threads",
            "decode_tokens_per_s", "decode_bytes", "read_bandwidth_bytes_per_s", "bandwidth_probes",
            "bandwidth_spread", "bandwidth_pooled_jobs", "bandwidth_flag", "roofline_tokens_per_s",
            "mbu", "mbu_flag", "datasheet_bandwidth_bytes_per_s", "mbu_datasheet", "ideal_tpot_s",
            "prefill_flops", "peak_flops_per_s", "peak_flops_source", "ideal_prefill_s",
            "mfu_prefill", "kv_bytes_per_token", "max_context", "kv_bytes_at_context",
            "energy_j_per_output_token", "output_tokens_per_j", "energy_idle_power_w",
            "energy_method", "energy_note", "outside_cores", "steal_cores", "noisy", "interference",
            "usd_per_hour", "price_source", "price_date", "usd_per_1m_output_tokens",
            "usd_per_1m_input_tokens", "memory_kind", "cpu_flags", "runtime", "artifact_hash",
            "git_commit", "perplexity", "ppl_ratio", "kl_mean", "kl_p99", "kl_note",
            "teacher_forced_agreement", "greedy_agreement", "first_divergence_p50", "quality_by",
            "quality_status", "quality_borrowed",
        ),
    },
    "quality": {
        1: (
            "model", "artifact", "variant", "engine", "reference_artifact", "perplexity",
            "scored_tokens", "teacher_forced_agreement", "argmax_ids", "heldout_sha256",
            "artifact_hash", "engine_version", "runtime", "seconds",
        ),
        2: (
            "model", "artifact", "variant", "engine", "precision", "reference_artifact",
            "reference_variant", "perplexity", "scored_tokens", "ppl_ratio", "teacher_forced_agreement",
            "kl_mean", "kl_p99", "kl_note", "kl_top_k", "argmax_ids", "topk_ids", "topk_logprobs",
            "scored_ids_sha256", "heldout_sha256", "artifact_hash", "dequantized_from",
            "engine_version", "runtime", "seconds",
        ),
        3: (
            "model", "artifact", "variant", "engine", "precision", "reference_artifact",
            "reference_variant", "perplexity", "scored_tokens", "ppl_ratio",
            "teacher_forced_agreement", "kl_mean", "kl_p99", "kl_note", "kl_top_k", "argmax_ids",
            "topk_ids", "topk_logprobs", "scored_ids_sha256", "heldout_sha256", "artifact_hash",
            "dequantized_from", "engine_version", "runtime", "seconds", "status", "failure",
        ),
    },
    "serving_requests": {
        1: (
            "point", "point_index", "concurrency", "request_rate", "burstiness", "request_index", "prompt_id",
            "warmup", "success", "error", "count_flag", "input_tokens", "usage_prompt_tokens",
            "requested_output_tokens", "usage_completion_tokens", "chunk_tokens_sum", "chunks",
            "chunk_tokens_method", "retokenized_tokens", "scheduled_s", "send_s", "queue_s", "ttft_s", "latency_s",
            "tpot_s", "itl_s", "chunk_tokens", "http_status", "finish_reason", "output_text", "point_duration_s",
            "not_sent", "peak_concurrency", "client_cpu_s", "loop_lag_p99_s", "loop_lag_max_s", "server_metrics",
            "server_ready_s", "model", "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
            "variant_options", "runtime", "threads", "model_hash", "artifact_hash", "model_manifest_sha256",
            "artifact_manifest_sha256", "artifact_bytes", "engine_version", "library_versions", "device",
            "device_name", "host", "env_hash", "git_commit", "config_hash", "run_id", "timestamp", "schema_version",
        ),
        2: (
            "point", "point_index", "concurrency", "request_rate", "burstiness", "request_index", "prompt_id",
            "warmup", "success", "error", "count_flag", "input_tokens", "usage_prompt_tokens",
            "requested_output_tokens", "usage_completion_tokens", "chunk_tokens_sum", "chunks",
            "chunk_tokens_method", "retokenized_tokens", "scheduled_s", "send_s", "queue_s", "ttft_s", "latency_s",
            "tpot_s", "itl_s", "chunk_tokens", "http_status", "finish_reason", "output_text", "point_duration_s",
            "not_sent", "peak_concurrency", "client_cpu_s", "loop_lag_p99_s", "loop_lag_max_s", "server_metrics",
            "server_ready_s", "model", "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
            "variant_options", "runtime", "threads", "model_hash", "artifact_hash", "model_manifest_sha256",
            "artifact_manifest_sha256", "artifact_bytes", "engine_version", "library_versions", "device",
            "device_name", "host", "env_hash", "git_commit", "config_hash", "run_id", "timestamp", "schema_version",
        ),
    },
    "serving": {
        1: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name", "point", "concurrency",
            "request_rate", "requests", "failed", "warmups", "count_flags", "valid", "saturated", "note",
            "duration_s", "completed", "request_throughput", "request_goodput", "output_throughput",
            "total_token_throughput", "ttft_mean_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_mean_ms",
            "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms", "itl_mean_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms",
            "e2el_mean_ms", "e2el_p50_ms", "e2el_p90_ms", "e2el_p99_ms", "e2el_with_queue_p50_ms", "queue_p99_ms",
            "max_concurrent_requests", "client_cpu_s", "loop_lag_p99_ms", "server_ttft_mean_ms",
            "server_itl_mean_ms", "prefix_cache_hit_rate", "perplexity", "ppl_ratio", "kl_mean",
            "teacher_forced_agreement", "quality_by", "threads", "runtime", "artifact_hash", "git_commit",
        ),
        2: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name", "point",
            "concurrency", "request_rate", "requests", "failed", "warmups", "count_flags", "valid",
            "saturated", "note", "duration_s", "completed", "request_throughput", "request_goodput",
            "output_throughput", "total_token_throughput", "ttft_mean_ms", "ttft_p50_ms", "ttft_p90_ms",
            "ttft_p99_ms", "tpot_mean_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms", "itl_mean_ms",
            "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "e2el_mean_ms", "e2el_p50_ms", "e2el_p90_ms",
            "e2el_p99_ms", "ttft_p50_ci_low_ms", "ttft_p50_ci_high_ms", "tpot_p50_ci_low_ms",
            "tpot_p50_ci_high_ms", "e2el_with_queue_p50_ms", "queue_p99_ms", "max_concurrent_requests",
            "client_cpu_s", "loop_lag_p99_ms", "server_ttft_mean_ms", "server_itl_mean_ms",
            "prefix_cache_hit_rate", "usd_per_hour", "price_source", "usd_per_1m_output_tokens",
            "perplexity", "ppl_ratio", "kl_mean", "teacher_forced_agreement", "quality_by", "threads",
            "runtime", "artifact_hash", "git_commit",
        ),
        3: (
            "model", "artifact", "engine", "variant", "scenario", "status", "device_name", "point",
            "concurrency", "request_rate", "requests", "failed", "warmups", "count_flags", "valid",
            "saturated", "note", "duration_s", "completed", "request_throughput", "request_goodput",
            "output_throughput", "total_token_throughput", "ttft_mean_ms", "ttft_p50_ms",
            "ttft_p90_ms", "ttft_p99_ms", "tpot_mean_ms", "tpot_p50_ms", "tpot_p90_ms",
            "tpot_p99_ms", "itl_mean_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "e2el_mean_ms",
            "e2el_p50_ms", "e2el_p90_ms", "e2el_p99_ms", "ttft_p50_ci_low_ms",
            "ttft_p50_ci_high_ms", "tpot_p50_ci_low_ms", "tpot_p50_ci_high_ms",
            "e2el_with_queue_p50_ms", "queue_p99_ms", "max_concurrent_requests", "client_cpu_s",
            "loop_lag_p99_ms", "server_ttft_mean_ms", "server_itl_mean_ms", "prefix_cache_hit_rate",
            "usd_per_hour", "price_source", "usd_per_1m_output_tokens", "perplexity", "ppl_ratio",
            "kl_mean", "teacher_forced_agreement", "quality_by", "threads", "runtime",
            "artifact_hash", "git_commit",
        ),
    },
}


def columns_fingerprint(table: schema.Table) -> str:
    text = "\n".join(f"{c.name}:{c.type}:{c.unit}:{c.meaning}" for c in table.columns)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_schema_changes_bump_the_version(table):
    assert (table.version, columns_fingerprint(table)) == PINNED[table.name], (
        f"the {table.name} columns changed: bump its version in core/schema.py, update PINNED here, and regenerate "
        "docs/table-schema.md with `python -m llmbench schema-doc --out docs/table-schema.md`")


def pin_problem(table: schema.Table) -> str:
    """Why the table's columns do not match COLUMNS_BY_VERSION at its version; empty when they do."""
    pinned = COLUMNS_BY_VERSION[table.name]
    if table.version not in pinned:
        return f"{table.name} version {table.version} has no pinned column list: add it to COLUMNS_BY_VERSION"
    if tuple(c.name for c in table.columns) != pinned[table.version]:
        return (f"the {table.name} column names changed but its version ({table.version}) did not: bump it in "
                "rows.py and pin the new names here as a new entry")
    if table.version != max(pinned):
        return f"{table.name}: a pinned version is newer than rows.py's {table.version}"
    return ""


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_columns_are_pinned_per_version(table):
    assert pin_problem(table) == ""


def test_the_pin_sees_a_column_change_without_a_bump():
    extra = schema.Column("stray", rows.pa.int32(), "", "a column added without a version bump")
    changed = dataclasses.replace(schema.REQUESTS, columns=[*schema.REQUESTS.columns, extra])
    assert "column names changed but its version" in pin_problem(changed)
    bumped = dataclasses.replace(changed, version=changed.version + 1)
    assert "has no pinned column list" in pin_problem(bumped)


def test_versions_are_written_into_the_parquet_metadata():
    for table in ALL_TABLES:
        assert table.schema.metadata[b"llmbench_schema_version"] == str(table.version).encode()
    assert schema.SCHEMA.metadata[b"llmbench_schema_version"] == str(schema.SCHEMA_VERSION).encode()


def test_docs_match_the_schema():
    assert (REPO / "docs/table-schema.md").read_text() == schema.markdown_doc(), (
        "docs/table-schema.md is out of date: `python -m llmbench schema-doc --out docs/table-schema.md`")


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_every_column_is_documented(table):
    assert all(c.meaning for c in table.columns)
    assert len({c.name for c in table.columns}) == len(table.columns)
