"""Every table llmbench writes, each declared once here (Column, Table, versions); every writer and reader uses
these declarations, and docs/table-schema.md is generated from them (``python -m llmbench schema-doc``).

requests          one row per request (job/rows.py: request_row, unverified_row, the only ways to make one)
latency           the summary, one line per model × artifact × engine × variant × scenario (analysis/tables.py)
quality           one line per (artifact, variant) scored for quality (analysis/quality.py)
serving_requests  one row per request a serving job sent (warm-ups and failures included), with its sweep point,
                  the job's provenance columns (job/context.py) and the point's client-side facts
serving           one line per model × artifact × engine × variant × scenario × sweep point (analysis/serving.py)

Each table's version changes whenever one of its columns is added, removed, renamed or changes meaning, and is
written into the Parquet metadata; a test fails when the declarations and the generated docs drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 6   # 6: threads int64 (as in every other table); requests: 2 added engine_metrics; 3 added first_of_shape (failed requests are rows),
#                      model/artifact_manifest_sha256, host facts (GPU driver, CUDA, RAM, affinity), env_hash of
#                      the installed packages under backend none, ran_as, threads, decode bytes and their parts,
#                      bandwidth_devices; 4 added model_shape, energy_j, energy_window_s, idle_power_w,
#                      energy_method, energy_note; 5 added interference, bandwidth_probes, bandwidth_threads,
#                      bandwidth_cpus, bandwidth_flag (probed after loading, before and after the measurement)
SUMMARY_VERSION = 5  # 5: decode_bytes int64 (as in the requests table); latency: 2 added valid, the 95% confidence intervals (failures excluded, noted), ppl_ratio,
#                      kl_mean, kl_p99, kl_note, quality_borrowed (quality per line), ran_as, threads, weight_bytes,
#                      decode_bytes, mbu_flag, datasheet MBU; roofline from decode bytes; 3 added ideal_tpot_s,
#                      prefill FLOPs / ideal time / MFU, KV bytes, energy per token, cost per 1M tokens;
#                      4: intervals resample passes then requests (hierarchical), added passes,
#                      tokens_per_s_by_pass, ci_overlaps; outside_cores, steal_cores, noisy, interference;
#                      read_bandwidth_bytes_per_s (pooled), bandwidth_probes, bandwidth_spread, bandwidth_pooled_jobs,
#                      bandwidth_flag
QUALITY_VERSION = 3  # 2: one file per variant; precision, reference_variant, ppl_ratio, KL, top-K, hashes;
#                      3: status, failure (a scoring failure is the line's quality status, not a failed job)


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
    Column("first_of_shape", pa.bool_(), "", "first request of its input length (input_tokens) in the job, warm-ups counted: it may pay a first-use cost (e.g. a compile) that later requests of that length do not"),
    Column("success", pa.bool_(), "", "the engine returned without raising, exactly the requested tokens (its count, the streamed count and the ids agree), within the scenario's request_timeout_s"),
    Column("error", pa.string(), "", "why the request failed (empty when it succeeded): the engine's exception, the count mismatch, or the time over request_timeout_s; a request whose engine raised has empty measured columns"),
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
    Column("memory_kind", pa.string(), "", "cuda_max_allocated (GPU), cuda_max_allocated_sum_of_tp_workers, process_peak_rss (CPU: VmHWM reset per request), process_lifetime_peak_rss (the reset failed or /proc has no VmHWM: the process's peak since it started, with why) or process_tree_peak_rss (engine workers in child processes included)"),
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
    Column("threads", pa.int64(), "", "CPU threads the engine computed with, read back from it (empty: a GPU engine)"),
    Column("weight_bytes", pa.int64(), "bytes", "bytes of all weight tensors as the engine ran them (every TP worker's shard together), the engine's own figure after the run (Loaded.weight_bytes)"),
    Column("weight_bytes_method", pa.string(), "", "what the engine counted for weight_bytes"),
    Column("input_embedding_bytes", pa.int64(), "bytes", "the input embedding table as run (part of weight_bytes)"),
    Column("embedding_row_bytes", pa.int64(), "bytes", "one row of the embedding table: what a batch-1 decode step gathers"),
    Column("tied_embeddings", pa.bool_(), "", "lm_head is the input embedding table, so the whole table is read every step"),
    Column("kv_bytes_per_token", pa.int64(), "bytes", "KV-cache bytes per token of context, all layers, at the precision the engine keeps it"),
    Column("decode_bytes", pa.int64(), "bytes", "bytes one decode step of this request reads (roofline.decode_bytes): weight_bytes - the embedding rows not gathered (untied only) + kv_bytes_per_token × mean decode context (input + output / 2)"),
    Column("read_bandwidth_bytes_per_s", pa.float64(), "bytes/s", "memory read bandwidth measured in this job on one of its devices (roofline.py), with the threads and CPUs the engine ran: the median of bandwidth_probes"),
    Column("bandwidth_method", pa.string(), "", "how read_bandwidth_bytes_per_s was measured"),
    Column("bandwidth_devices", pa.int32(), "", "devices read in parallel at that bandwidth (tensor parallel on N GPUs: N; CPU: 1)"),
    Column("bandwidth_probes", pa.list_(pa.float64()), "bytes/s", "every probe of the job: after loading, before the warm-ups, and after the measured requests (job/bandwidth.py); read_bandwidth_bytes_per_s is their median"),
    Column("bandwidth_threads", pa.int32(), "", "CPU threads the probe read with: the engine's, read back (Loaded.threads); empty on a GPU"),
    Column("bandwidth_cpus", pa.string(), "", "CPUs the probe ran on, comma-separated: those the engine's compute threads were seen on (vLLM's workers), else the job process's affinity; empty on a GPU"),
    Column("bandwidth_flag", pa.string(), "", "why the probe may not have read like the engine ran (e.g. the engine reported no thread count); empty when alike"),
    Column("model_shape", pa.string(), "json", "the model's shape from its config.json (layers, hidden size, heads, KV heads, head dim, MLP size, vocabulary, tied embeddings) and matmul_parameters, the weights of every matmul a token goes through (roofline.model_shape); {} when the model has no such config"),
    Column("energy_j", pa.float64(), "J", "energy of the job's devices over one window spanning all its measured requests (warm-ups excluded), from the hardware's counter (energy_method); idle not subtracted; the same in every row of the job; empty with energy_note saying why"),
    Column("energy_window_s", pa.float64(), "s", "length of that window"),
    Column("idle_power_w", pa.float64(), "W", "power of the same devices with the engine loaded and idle, measured in this job just before the warm-ups (job/energy.py)"),
    Column("energy_method", pa.string(), "", "the counter read: NVML total energy (GPUs) or RAPL packages (CPU)"),
    Column("energy_note", pa.string(), "", "why the energy columns are empty (no readable counter, window too short); empty otherwise"),
    Column("interference", pa.string(), "json", "what else used the machine over the job's measured window (job/interference.py), the same in every row of the job: window_s, cpus, job_cores (CPU-seconds per second of the job's process tree), outside_cores (of every other process: the machine's busy time from /proc/stat minus the tree's), steal_cores, loadavg_1m at begin and end, top_outside (the 3 busiest other processes); on CUDA gpu_other_pids, gpu_sm_clock_mhz (min, max polled), gpu_sm_clock_max_mhz, gpu_clock_reasons, gpu_slowdowns (NVML), or gpu_note saying NVML was not read; {} when nothing was measured"),
    # provenance
    Column("model_hash", pa.string(), "sha256", "content hash of the model directory's manifest"),
    Column("artifact_hash", pa.string(), "sha256", "content hash of the artifact directory's manifest"),
    Column("model_manifest_sha256", pa.string(), "sha256", "hash of the model's manifest.json content (its manifest_sha256, checked by the job)"),
    Column("artifact_manifest_sha256", pa.string(), "sha256", "hash of the artifact's manifest.json content (its manifest_sha256, checked by the job)"),
    Column("artifact_bytes", pa.int64(), "bytes", "size of the artifact's files on disk (from its manifest)"),
    Column("engine_version", pa.string(), "", "version of the engine library"),
    Column("library_versions", pa.string(), "json", "versions of the libraries in the job's env"),
    Column("device", pa.string(), "", "device string the engine used (cpu, cuda:0)"),
    Column("device_name", pa.string(), "", "GPU name or CPU model"),
    Column("host", pa.string(), "json", "python, platform, CPU (name, flags, count, the process's affinity), RAM total, GPUs (nvidia-smi: names, driver, CUDA version; null without an NVIDIA driver), torch's CUDA build, env prefix"),
    Column("env_hash", pa.string(), "sha256", "hash of the job's software env: its env file's requirements hash (LLMBENCH_ENV_HASH), or, when the driver's interpreter ran it (backend none), 'installed:' + sha256 of its installed distributions (name==version, sorted)"),
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
    Column("failed", pa.int64(), "", "measured requests that failed (engine raised, wrong token count, over request_timeout_s): counted here, kept in the requests table with their error, excluded from every statistic of the line"),
    Column("valid", pa.bool_(), "", "true when every measured request succeeded; false when any failed (the statistics then cover only the successful ones) or nothing was measured (unverified)"),
    Column("note", pa.string(), "", "an unverified line: why nothing was measured; a line with failed requests: how many, and the first one's error"),
    Column("avg_latency_s", pa.float64(), "s", "mean end-to-end latency of successful requests"),
    Column("avg_output_tokens", pa.float64(), "tokens", "mean new tokens per successful request"),
    Column("tokens_per_s", pa.float64(), "tokens/s", "sum of output tokens / sum of latencies of successful requests (the study's tokens/s)"),
    Column("tokens_per_s_ci_low", pa.float64(), "tokens/s", "lower end of tokens_per_s's 95% hierarchical bootstrap percentile interval over the line's successful requests: 2000 resamples, seed 0, each drawing the passes (repeat) with replacement, then the requests within every drawn pass (analysis/intervals.py); with one pass it covers the prompts only, not pass-to-pass drift; nothing about other runs or machines; empty with fewer than 2 successful requests"),
    Column("tokens_per_s_ci_high", pa.float64(), "tokens/s", "upper end of the same interval"),
    Column("passes", pa.int64(), "", "passes over the prompts (distinct repeat values) among the successful requests: the independent units of the intervals"),
    Column("tokens_per_s_by_pass", pa.list_(pa.float64()), "tokens/s", "each pass's own tokens/s (sum of output tokens / sum of latencies of its successful requests), in pass order"),
    Column("ci_overlaps", pa.string(), "", "the other lines of the same model, scenario and device whose tokens_per_s interval overlaps this line's ('engine / variant on artifact', '; '-separated): this run does not order them"),
    Column("ttft_p50_s", pa.float64(), "s", "median time to first token over the successful requests (n = requests - failed)"),
    Column("ttft_p90_s", pa.float64(), "s", "90th percentile time to first token over the successful requests (linear interpolation: with n ≤ 11 it lies between the two largest values)"),
    Column("tpot_p50_s", pa.float64(), "s", "median time per output token after the first, over the successful requests"),
    Column("tpot_p50_ci_low_s", pa.float64(), "s", "lower end of tpot_p50_s's 95% hierarchical bootstrap percentile interval over the line's successful requests: 2000 resamples, seed 0, each drawing the passes (repeat) with replacement, then the requests within every drawn pass (analysis/intervals.py); with one pass it covers the prompts only, not pass-to-pass drift; nothing about other runs or machines; empty with fewer than 2 successful requests"),
    Column("tpot_p50_ci_high_s", pa.float64(), "s", "upper end of the same interval"),
    Column("tpot_p90_s", pa.float64(), "s", "90th percentile time per output token over the successful requests (linear interpolation)"),
    Column("peak_memory_bytes", pa.int64(), "bytes", "largest per-request peak of the successful requests (see memory_kind); empty for unverified lines"),
    Column("artifact_bytes", pa.int64(), "bytes", "artifact size on disk"),
    Column("weight_bytes", pa.int64(), "bytes", "weight tensor bytes as the engine ran them (the size as run; see the requests table)"),
    Column("ran_as", pa.string(), "", "what ran, in words, read back from the engine"),
    Column("threads", pa.int64(), "", "CPU threads the engine computed with, read back (empty: a GPU engine)"),
    Column("decode_tokens_per_s", pa.float64(), "tokens/s", "1 / median TPOT"),
    Column("decode_bytes", pa.int64(), "bytes", "median over successful requests of the bytes one decode step reads (roofline.decode_bytes), rounded to a byte"),
    Column("read_bandwidth_bytes_per_s", pa.float64(), "bytes/s", "the read bandwidth the roofline divides by: the median of every probe of the run's jobs that ran alike (same host CPU, device, probe threads, CPUs and devices; analysis/pooled_bandwidth.py), else the job's own"),
    Column("bandwidth_probes", pa.list_(pa.float64()), "bytes/s", "this line's own probes (before the warm-ups, after the measured requests)"),
    Column("bandwidth_spread", pa.float64(), "share", "(max - min) / median of the pooled probes: how much the figure moved between probes and jobs"),
    Column("bandwidth_pooled_jobs", pa.int64(), "", "jobs whose probes make read_bandwidth_bytes_per_s (0: the job's own figure, from rows without probes)"),
    Column("bandwidth_flag", pa.string(), "", "why this line's probe may not have read like its engine ran (job/bandwidth.py); empty when alike"),
    Column("roofline_tokens_per_s", pa.float64(), "tokens/s", "read_bandwidth_bytes_per_s × bandwidth devices / decode bytes: the memory limit at batch 1"),
    Column("mbu", pa.float64(), "share", "model bandwidth utilization: decode bytes × decode tok/s / (measured read bandwidth × bandwidth devices); empty when over 1 (see mbu_flag)"),
    Column("mbu_flag", pa.string(), "", "set when MBU came out over 100% (impossible: the bytes counted are wrong), instead of a figure"),
    Column("datasheet_bandwidth_bytes_per_s", pa.float64(), "bytes/s", "the card's peak from its datasheet where analysis/hardware.py knows the card by name (per device)"),
    Column("mbu_datasheet", pa.float64(), "share", "MBU against the datasheet peak instead of the measured bandwidth; empty where the card is unknown or MBU is flagged"),
    Column("ideal_tpot_s", pa.float64(), "s", "the least time a batch-1 decode step can take: decode bytes / (measured read bandwidth × bandwidth devices) = 1 / roofline_tokens_per_s"),
    Column("prefill_flops", pa.float64(), "FLOPs", "FLOPs of a request's prefill from the model's shape (roofline.prefill_flops: 2 × layer matmul weights per prompt token, causal attention, lm_head of the last position), median over the successful requests; empty without a model shape"),
    Column("peak_flops_per_s", pa.float64(), "FLOP/s", "the card's dense datasheet peak in the dtype the engine ran (analysis/hardware.py); empty where the card or dtype is not in that table (every CPU)"),
    Column("peak_flops_source", pa.string(), "", "the datasheet and the figure peak_flops_per_s comes from, and the dtype key"),
    Column("ideal_prefill_s", pa.float64(), "s", "the least time the median prefill can take: max(prefill FLOPs / (peak × devices), weight bytes / (measured bandwidth × devices))"),
    Column("mfu_prefill", pa.float64(), "share", "model FLOP/s utilization of prefill: prefill FLOPs / TTFT / (peak × devices), median over the successful requests (TTFT is the prefill, which yields the first token, plus the host's overheads: streaming, sampling, Python)"),
    Column("kv_bytes_per_token", pa.int64(), "bytes", "KV-cache bytes per token of context at the precision the engine keeps it (the engine's figure)"),
    Column("max_context", pa.int64(), "tokens", "longest context of the line's successful requests: input + output tokens"),
    Column("kv_bytes_at_context", pa.int64(), "bytes", "kv_bytes_per_token × max_context: the KV cache one such request holds at its end"),
    Column("energy_j_per_output_token", pa.float64(), "J/token", "(energy over the job's measured window - idle power × window) / output tokens of the window's successful requests (prefill energy included; a failed request's energy stays in the window, energy_note then says so); empty with energy_note saying why"),
    Column("output_tokens_per_j", pa.float64(), "tokens/J", "the inverse: output tokens per joule above idle"),
    Column("energy_idle_power_w", pa.float64(), "W", "idle power measured in the job, subtracted above"),
    Column("energy_method", pa.string(), "", "the counter read (NVML total energy, RAPL packages)"),
    Column("energy_note", pa.string(), "", "why there is no energy figure (e.g. no readable counter on this machine)"),
    Column("outside_cores", pa.float64(), "cores", "CPU used by processes outside the job's process tree over its measured window, in cores (CPU-seconds per second; job/interference.py); empty when not measured"),
    Column("steal_cores", pa.float64(), "cores", "CPU time the hypervisor gave to other guests over the same window, in cores"),
    Column("noisy", pa.bool_(), "", "the measurement was disturbed: outside_cores + steal_cores over interference.NOISY_OUTSIDE_CORES (set from measurement, see job/interference.py), another process on the GPU, or GPU clocks slowed by heat or hardware"),
    Column("interference", pa.string(), "", "what was seen when noisy, with the figures; 'not measured' for rows written before the monitor existed; empty otherwise"),
    Column("usd_per_hour", pa.float64(), "US$/h", "config `pricing` for this device × bandwidth devices (tensor parallel: all its GPUs); empty without an entry"),
    Column("price_source", pa.string(), "", "where that price comes from (config)"),
    Column("price_date", pa.string(), "date", "when it was read (config)"),
    Column("usd_per_1m_output_tokens", pa.float64(), "US$", "usd_per_hour / 3600 × 10^6 × sum of (latency - TTFT) / sum of output tokens: the decode device-time of a million output tokens at this line's rate, batch 1 (prefill is charged to input tokens, not twice)"),
    Column("usd_per_1m_input_tokens", pa.float64(), "US$", "usd_per_hour / 3600 × 10^6 × sum of TTFTs / sum of input tokens: a million prompt tokens at this line's prefill rate, batch 1 (the two costs together charge each request's device time once)"),
    Column("memory_kind", pa.string(), "", "what peak_memory_bytes measured (see the requests table)"),
    Column("cpu_flags", pa.string(), "", "the host CPU's kernel-relevant flags, space-separated"),
    Column("runtime", pa.string(), "json", "runtime of the line's first request (what actually ran)"),
    Column("artifact_hash", pa.string(), "sha256", "content hash of the artifact directory's manifest"),
    Column("git_commit", pa.string(), "", "commit of the workflow checkout (-dirty: uncommitted changes)"),
    Column("perplexity", pa.float64(), "", "perplexity on the held-out text, scored by this line's own engine and variant (quality_by names who; quality_borrowed: another variant's)"),
    Column("ppl_ratio", pa.float64(), "ratio", "perplexity / the reference line's perplexity (quality table)"),
    Column("kl_mean", pa.float64(), "nats", "mean over positions of KL(P_ref ‖ Q) per held-out position, computed over the reference's top-K tokens (kl_top_k) plus one bucket for the rest of the mass: a lower bound of the full-vocabulary KL (data-processing inequality); empty with kl_note when the engine gives no whole distribution"),
    Column("kl_p99", pa.float64(), "nats", "99th percentile over positions of the same per-position KL lower bound"),
    Column("kl_note", pa.string(), "", "why kl_mean is empty (e.g. an engine whose score gives only its own top-k)"),
    Column("teacher_forced_agreement", pa.float64(), "share", "top-1 (argmax) agreement with the reference line on the held-out text"),
    Column("greedy_agreement", pa.float64(), "share", "mean over prompts of identical tokens among the first K, vs the reference"),
    Column("first_divergence_p50", pa.float64(), "tokens", "median first position where the output differs from the reference's"),
    Column("quality_by", pa.string(), "", "engine / variant (precision) that produced the quality figures"),
    Column("quality_status", pa.string(), "", "scored; failed: <why> (the scoring raised in the benchmark job, whose speed rows are kept); empty: no quality row for this line"),
    Column("quality_borrowed", pa.bool_(), "", "true when this line's engine cannot score and its quality figures come from quality_by, another variant of the same artifact (marked † in latency.md)"),
]

QUALITY_COLUMNS: list[Column] = [
    Column("model", pa.string(), "", "model key in config"),
    Column("artifact", pa.string(), "", "artifact key in config"),
    Column("variant", pa.string(), "", "the benchmarked variant that scored the artifact with its own engine and options"),
    Column("engine", pa.string(), "", "engine adapter name"),
    Column("precision", pa.string(), "", "precision it scored in, read back from the engine (dtype, compute type, inference precision) or the artifact's stored type"),
    Column("reference_artifact", pa.string(), "", "artifact of the reference line"),
    Column("reference_variant", pa.string(), "", "variant of the reference line (quality.reference_variant)"),
    Column("perplexity", pa.float64(), "", "exp(mean NLL) over the held-out tokens, scored teacher forced in independent windows"),
    Column("scored_tokens", pa.int32(), "tokens", "positions scored"),
    Column("ppl_ratio", pa.float64(), "ratio", "perplexity / the reference line's perplexity; empty for the reference itself"),
    Column("teacher_forced_agreement", pa.float64(), "share", "top-1 agreement: share of positions where this line's argmax equals the reference line's; empty for the reference itself"),
    Column("kl_mean", pa.float64(), "nats", "mean over positions of KL(P_ref ‖ Q) per held-out position, computed over the reference's top-K tokens (kl_top_k) plus one bucket for the rest of the mass: a lower bound of the full-vocabulary KL (data-processing inequality); empty for the reference itself and where kl_note says why"),
    Column("kl_p99", pa.float64(), "nats", "99th percentile over positions of the same per-position KL lower bound"),
    Column("kl_note", pa.string(), "", "why kl_mean is empty; empty when it is a figure"),
    Column("kl_top_k", pa.int32(), "tokens", "K of topk_ids/topk_logprobs; empty when the engine gives no whole distribution"),
    Column("argmax_ids", pa.list_(pa.int32()), "token ids", "argmax prediction per scored position (the reference's are compared against)"),
    Column("topk_ids", pa.list_(pa.int32()), "token ids", "the K most likely next tokens per position, most likely first, flattened (positions × K); what KL against this line reads"),
    Column("topk_logprobs", pa.list_(pa.float32()), "nats", "their log-probs (full-vocabulary normalized), flattened like topk_ids"),
    Column("scored_ids_sha256", pa.string(), "sha256", "hash of the scored token ids (JSON list): lines are compared only when it is equal"),
    Column("heldout_sha256", pa.string(), "sha256", "hash of the held-out text (the packaged corpus); the merge refuses lines whose hash differs from the reference's"),
    Column("artifact_hash", pa.string(), "sha256", "content hash of the artifact directory's manifest; the merge refuses a file whose hash differs from the benchmark rows'"),
    Column("dequantized_from", pa.string(), "json", "the artifact manifest's dequantized_from (e.g. the embedded Q4_1 GGUF); {} when none"),
    Column("engine_version", pa.string(), "", "version of the engine library"),
    Column("runtime", pa.string(), "json", "what actually ran, read back from the engine"),
    Column("seconds", pa.float64(), "s", "time spent scoring"),
    Column("status", pa.string(), "", "scored, or failed: the scoring raised (failure says why; every figure empty) and the benchmark job kept its speed rows"),
    Column("failure", pa.string(), "", "why the scoring failed (the exception); empty when scored"),
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
QUALITY = Table("quality", "Quality per line", QUALITY_VERSION,
                "`results/runs/<model>/<artifact>/<variant>/<scenario>.quality.parquet` (written by the line's first "
                "latency job; empty for its other jobs) or, for a line that only serves, "
                "`results/quality/<model>/<artifact>/<variant>.parquet`: one line per benchmarked variant whose "
                "engine can score.", QUALITY_COLUMNS)
TABLES = (REQUESTS, SUMMARY, QUALITY)
SCHEMA = REQUESTS.schema


SERVING_REQUESTS_VERSION = 2  # 2: threads int64 (shared with the requests table)
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
    *[c for c in COLUMNS if c.name in _PROVENANCE],
    Column("schema_version", I32, "", "SERVING_REQUESTS_VERSION of this table"),
]

_STAT = "over the point's successful measured requests"
SERVING_COLUMNS: list[Column] = [
    *[c for c in COLUMNS if c.name in ("model", "artifact", "engine", "variant", "scenario", "status", "device_name")],
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
                         "`results/serving/runs/<model>/<artifact>/<variant>/<scenario>.parquet` of a serving scenario and "
                         "`results/tables/serving-requests.parquet`.", SERVING_REQUEST_COLUMNS)
SERVING = Table("serving", "Serving lines", SERVING_VERSION,
                "`results/tables/serving.parquet`: one line per model × artifact × engine × variant × scenario × "
                "sweep point (`serving.md` shows a selection).", SERVING_COLUMNS)
SERVING_TABLES = (SERVING_REQUESTS, SERVING)


def markdown_doc(tables: tuple[Table, ...] | None = None) -> str:
    """The schema doc of ``tables`` (default: every table, the serving ones included)."""
    if tables is None:
        tables = (*TABLES, *SERVING_TABLES)
    lines = ["# Table schemas", "",
             "Generated from `workflow/llmbench/core/schema.py` by "
             "`python -m llmbench schema-doc`; do not edit by hand.",
             "Each table's version is in its Parquet metadata (`llmbench_schema_version`)."]
    for t in tables:
        lines += ["", f"## {t.title}: `{t.name}` (version {t.version})", "", t.files, "",
                  "| column | type | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.unit} | {c.meaning} |" for c in t.columns]
    return "\n".join(lines) + "\n"
