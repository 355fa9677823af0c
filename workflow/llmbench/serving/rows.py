"""The serving tables, declared like the others (job/rows.py: Column, Table, versions in the Parquet metadata).

serving_requests  one row per request a serving job sent (warm-ups and failures included), with its sweep point,
                  the job's provenance columns (job/context.py) and the point's client-side facts
serving           one line per model × artifact × engine × variant × scenario × sweep point (analysis/serving.py)
"""

from __future__ import annotations

import pyarrow as pa

from llmbench.job.rows import COLUMNS as REQUEST_COLUMNS, Column, Table

SERVING_REQUESTS_VERSION = 1
SERVING_VERSION = 3  # 2 added the 95% intervals of TTFT and TPOT p50, cost per 1M output tokens; 3: cost × the
#                     server's devices (tensor parallel)

_PROVENANCE = ("model", "artifact", "engine", "variant", "scenario", "status", "synthetic_weights",
               "variant_options", "runtime", "threads", "model_hash", "artifact_hash", "model_manifest_sha256",
               "artifact_manifest_sha256", "artifact_bytes", "engine_version", "library_versions", "device",
               "device_name", "host", "env_hash", "git_commit", "config_hash", "run_id", "timestamp")

F64, I32, I64, STR, BOOL = pa.float64(), pa.int32(), pa.int64(), pa.string(), pa.bool_()

SERVING_REQUEST_COLUMNS: list[Column] = [
    Column("point", STR, "", "the sweep point: c=<max concurrency>,rate=<offered requests/s> (inf: no bound / all at once)"),
    Column("point_index", I32, "", "order of the point in the sweep"),
    Column("concurrency", I32, "", "most requests in flight at this point; empty: no bound"),
    Column("request_rate", F64, "requests/s", "offered request rate (inf: all requests offered at once)"),
    Column("burstiness", F64, "", "gamma shape of the arrival gaps (1: Poisson)"),
    Column("request_index", I32, "", "order of the request within its point, warm-ups first"),
    Column("prompt_id", STR, "", "prompt id (prompts dataset) or random-<point>-<i> / prefix-<point>-<i>"),
    Column("warmup", BOOL, "", "warm-up request of the point: sent before its clock starts, excluded from every statistic"),
    Column("success", BOOL, "", "HTTP 200, a complete stream, and the server's count of new tokens equal to the requested length"),
    Column("error", STR, "", "why the request failed: HTTP status and body, connection error, timeout, or the count mismatch"),
    Column("count_flag", STR, "", "set when the counts disagree: the server's usage, the streamed chunks' tokens, our recount of the streamed text, the requested length, or our vs the server's prompt length"),
    Column("input_tokens", I32, "tokens", "our count of the prompt as the model sees it (artifact's tokenizer, chat template applied)"),
    Column("usage_prompt_tokens", I32, "tokens", "the server's usage.prompt_tokens; empty when it sent no usage"),
    Column("requested_output_tokens", I32, "tokens", "max_tokens asked for (exactly this many: the engine's min-tokens / EOS options)"),
    Column("usage_completion_tokens", I32, "tokens", "the server's usage.completion_tokens (stream_options.include_usage); empty when it sent none"),
    Column("chunk_tokens_sum", I32, "tokens", "tokens over the streamed chunks (chunk_tokens_method says how each chunk was counted)"),
    Column("chunks", I32, "", "streamed chunks that carried text"),
    Column("chunk_tokens_method", STR, "", "server usage per chunk (vLLM continuous usage stats) or one per chunk (assumed)"),
    Column("retokenized_tokens", I32, "tokens", "our recount: the streamed text re-encoded with the artifact's tokenizer (no special tokens)"),
    Column("scheduled_s", F64, "s", "when the arrival process released the request, from the point's start"),
    Column("send_s", F64, "s", "when the request was sent, from the point's start"),
    Column("queue_s", F64, "s", "client queue time: send - scheduled (waiting for a concurrency slot); not part of latency_s"),
    Column("ttft_s", F64, "s", "send to the first chunk with text"),
    Column("latency_s", F64, "s", "send to the end of the stream (e2e, without queue time)"),
    Column("tpot_s", F64, "s", "(latency - ttft) / (output tokens - 1), output tokens = the server's count"),
    Column("itl_s", pa.list_(F64), "s", "gaps between successive chunks with text (vLLM's ITL: per chunk)"),
    Column("chunk_tokens", pa.list_(I32), "tokens", "tokens in each chunk with text"),
    Column("http_status", I32, "", "HTTP status of the response; empty when none came"),
    Column("finish_reason", STR, "", "the server's finish_reason (length: stopped at max_tokens; the count when it sends no usage)"),
    Column("output_text", STR, "", "the streamed text"),
    Column("point_duration_s", F64, "s", "first send to last end of the point's measured requests"),
    Column("not_sent", I32, "", "requests of the point not sent because max_duration_s ran out"),
    Column("peak_concurrency", I32, "", "most requests the client had in flight at once at this point"),
    Column("client_cpu_s", F64, "s", "CPU seconds of the client process over the point's measured requests"),
    Column("loop_lag_p99_s", F64, "s", "99th percentile of the client's event-loop lag (a 10 ms timer's lateness)"),
    Column("loop_lag_max_s", F64, "s", "largest event-loop lag at this point"),
    Column("server_metrics", STR, "json", "the server's own Prometheus counters and histogram sums over the point (after - before); {} when it has no /metrics"),
    Column("server_ready_s", F64, "s", "server start to its first 200 on the readiness path"),
    *[c for c in REQUEST_COLUMNS if c.name in _PROVENANCE],
    Column("schema_version", I32, "", "SERVING_REQUESTS_VERSION of this table"),
]

_STAT = "over the point's successful measured requests"
SERVING_COLUMNS: list[Column] = [
    *[c for c in REQUEST_COLUMNS if c.name in ("model", "artifact", "engine", "variant", "scenario", "status", "device_name")],
    Column("point", STR, "", "the sweep point (see serving_requests)"),
    Column("concurrency", I32, "", "max concurrency; empty: no bound"),
    Column("request_rate", F64, "requests/s", "offered rate (inf: all at once)"),
    Column("requests", I64, "", "measured requests sent (warm-ups excluded)"),
    Column("failed", I64, "", "measured requests that failed: counted, excluded from every statistic"),
    Column("warmups", I64, "", "warm-up requests sent before the point's clock started"),
    Column("count_flags", I64, "", "successful requests whose token counts disagree somewhere (count_flag)"),
    Column("valid", BOOL, "", "at least one measured request and none failed (count flags are counted apart)"),
    Column("saturated", BOOL, "", "the achieved request rate was below 90% of the offered finite rate, or requests were left unsent"),
    Column("note", STR, "", "the first failure or flag, the server facts that matter (prefix reuse, one request at a time)"),
    Column("duration_s", F64, "s", "first send to last end of the measured requests"),
    Column("completed", I64, "", "successful measured requests"),
    Column("request_throughput", F64, "requests/s", "completed / duration"),
    Column("request_goodput", F64, "requests/s", "completed requests meeting every SLO of goodput_slo_ms, per second; empty without SLOs"),
    Column("output_throughput", F64, "tokens/s", "output tokens (server's usage) of completed requests / duration"),
    Column("total_token_throughput", F64, "tokens/s", "(input + output tokens) / duration"),
    *[Column(f"{m}_{s}_ms", F64, "ms", f"{s} of {m.upper()} {_STAT}")
      for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "p50", "p90", "p99")],
    *[Column(f"{m}_p50_ci_{end}_ms", F64, "ms", f"{end}er end of {m.upper()} p50's 95% bootstrap percentile interval "
             "over the point's successful requests (2000 resamples, seed 0, as in the latency table); empty below "
             "2 requests") for m in ("ttft", "tpot") for end in ("low", "high")],
    Column("e2el_with_queue_p50_ms", F64, "ms", f"median of queue + e2e latency {_STAT}"),
    Column("queue_p99_ms", F64, "ms", f"99th percentile client queue time {_STAT}"),
    Column("max_concurrent_requests", I64, "", "most requests in flight at once, measured by the client"),
    Column("client_cpu_s", F64, "s", "CPU seconds the client spent on the point"),
    Column("loop_lag_p99_ms", F64, "ms", "99th percentile event-loop lag of the client"),
    Column("server_ttft_mean_ms", F64, "ms", "the server's own mean TTFT over the point (vllm:time_to_first_token_seconds sum/count delta); empty when it has no metrics"),
    Column("server_itl_mean_ms", F64, "ms", "the server's own mean inter-token latency (vllm:inter_token_latency_seconds or time_per_output_token)"),
    Column("prefix_cache_hit_rate", F64, "share", "the server's prefix-cache hits / queries over the point (vLLM); empty when it reports none"),
    Column("usd_per_hour", F64, "US$/h", "config `pricing` for the line's device × the devices the server ran on (tensor_parallel_size of the variant's options, else 1); empty without an entry (remote endpoints: whatever device_name says)"),
    Column("price_source", pa.string(), "", "where that price comes from, and when it was read (config)"),
    Column("usd_per_1m_output_tokens", F64, "US$", "usd_per_hour / 3600 × 10^6 / output_throughput: a million output tokens at this point's measured throughput, on all the server's devices"),
    Column("perplexity", F64, "", "held-out perplexity of this artifact scored by this variant's own engine (quality table); empty when it cannot score"),
    Column("ppl_ratio", F64, "ratio", "perplexity / the quality reference's"),
    Column("kl_mean", F64, "nats", "mean KL divergence from the reference's next-token distribution (quality table's lower bound)"),
    Column("teacher_forced_agreement", F64, "share", "top-1 agreement with the reference on the held-out text"),
    Column("quality_by", STR, "", "engine / variant (precision) that produced the quality figures; empty: none"),
    Column("threads", I64, "", "CPU threads the server's engine was given"),
    Column("runtime", STR, "json", "what the server ran: its launch facts"),
    Column("artifact_hash", STR, "sha256", "content hash of the artifact"),
    Column("git_commit", STR, "", "commit of the workflow checkout"),
]

SERVING_REQUESTS = Table("serving_requests", "Serving requests", SERVING_REQUESTS_VERSION,
                         "`results/runs/<model>/<artifact>/<variant>/<scenario>.parquet` of a serving scenario and "
                         "`results/tables/serving-requests.parquet`.", SERVING_REQUEST_COLUMNS)
SERVING = Table("serving", "Serving lines", SERVING_VERSION,
                "`results/tables/serving.parquet`: one line per model × artifact × engine × variant × scenario × "
                "sweep point (`serving.md` shows a selection).", SERVING_COLUMNS)
SERVING_TABLES = (SERVING_REQUESTS, SERVING)
