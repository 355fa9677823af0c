"""The streaming client and its metrics against a real HTTP server on 127.0.0.1 (standard library, in a thread):
every request is a record (failures with their error, counted, out of the statistics), vLLM's TTFT/TPOT/ITL
definitions, queue time kept out of e2el, arrivals, warm-ups, max_duration_s, a closed port, a planted API
token that must appear nowhere. Timing checks assert relations, not speeds (a loaded 2-core machine)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from llmbench.serving import client, metrics
from llmbench.serving.client import PointResult, RequestRecord, ServedRequest

TOKEN = "sk-planted-TOKEN-5e3c1a"


class Handler(BaseHTTPRequestHandler):
    """POST /v1/completions and /v1/chat/completions, streamed with chunked encoding. The body's ``test_*``
    fields steer it: first delay, delay between chunks, tokens per chunk, usage ("continuous", "final", "none").
    Prompts "fail500", "echo500" (echoes the request headers), "drop" (closes mid-stream) and "sleep"."""

    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def log_message(self, fmt, *args):
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, obj) -> None:
        self._chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

    def _error(self, body: bytes) -> None:
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chat = self.path.endswith("/chat/completions")
        prompt = body["messages"][0]["content"] if chat else body["prompt"]
        Handler.seen.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if prompt == "fail500":
            return self._error(b"internal error: " + b"x" * 2000)
        if prompt == "echo500":
            return self._error(str(dict(self.headers)).encode())
        try:
            if prompt == "sleep":
                time.sleep(body.get("test_sleep_s", 3.0))
            self._stream(body, chat, prompt)
        except OSError:  # the client gave up (timeout): nothing to say to it
            self.close_connection = True

    def _piece(self, i: int, k: int, n: int, chat: bool, usage: str, prompt_tokens: int) -> dict:
        text = f" t{i}"
        choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
        out = {"choices": [{**choice, "finish_reason": None}]}
        if usage == "continuous":
            done = min(n, (i + 1) * k)
            out["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": done,
                            "total_tokens": prompt_tokens + done}
        return out

    def _stream(self, body: dict, chat: bool, prompt: str) -> None:
        n, k = int(body["max_tokens"]), int(body.get("test_tokens_per_chunk", 1))
        usage, p_tok = body.get("test_usage", "continuous"), len(prompt.split())
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(body.get("test_first_delay", 0.0))
        for i in range(math.ceil(n / k)):
            if i:
                time.sleep(body.get("test_delay", 0.0))
            self._event(self._piece(i, k, n, chat, usage, p_tok))
            if prompt == "drop" and i == 1:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
        if usage != "none":
            self._event({"choices": [], "usage": {"prompt_tokens": p_tok, "completion_tokens": n,
                                                  "total_tokens": p_tok + n}})
        self._event(b"[DONE]")
        self._chunk(b"")


@pytest.fixture(scope="module")
def url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads, srv.block_on_close = True, False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def reqs(prompts, max_tokens=4, warm=0):
    return [ServedRequest(index=i, prompt=p, input_tokens=len(p.split()), max_tokens=max_tokens, warmup=i < warm)
            for i, p in enumerate(prompts)]


def run(url, requests, **kw):
    kw.setdefault("request_timeout_s", 5.0)
    return asyncio.run(client.run_point(url, "m", requests, **kw))


@pytest.fixture(scope="module")
def mixed(url):
    """Three good requests and four that fail in different ways, all at once."""
    prompts = ["a b c", "d e", "f", "fail500", "drop", "sleep", "g h"]
    res = run(url, reqs(prompts), request_timeout_s=1.0,
              extra_body={"test_first_delay": 0.05, "test_delay": 0.02, "test_sleep_s": 3.0})
    return prompts, res


def test_every_request_is_a_record_and_failures_say_why(mixed):
    prompts, res = mixed
    assert [r.index for r in res.records] == list(range(len(prompts)))
    by = {p: r for p, r in zip(prompts, res.records)}
    assert by["fail500"].http_status == 500 and by["fail500"].error.startswith("HTTP 500: internal error: x")
    assert len(by["fail500"].error) <= len("HTTP 500: ") + client.ERROR_BODY_CHARS
    assert "RemoteProtocolError" in by["drop"].error and by["drop"].chunk_times_s  # saw 2 chunks, then cut
    assert "timed out" in by["sleep"].error and "request_timeout_s = 1" in by["sleep"].error
    assert 0.9 < by["sleep"].latency_s < 2.5  # gave up at the timeout, not when the server woke
    assert all(not by[p].success for p in ("fail500", "drop", "sleep"))
    assert all(by[p].success and by[p].error == "" for p in ("a b c", "d e", "f", "g h"))


def test_failed_requests_are_counted_and_kept_out_of_the_statistics(mixed):
    _, res = mixed
    m = metrics.point_metrics(res, goodput_slo_ms=None)
    ok = [r for r in res.records if r.success]
    assert (m["completed"], m["failed"], m["warmup"], m["not_sent"]) == (4, 3, 0, 0)
    assert m["mean_ttft_ms"] == pytest.approx(1000 * np.mean([r.ttft_s for r in ok]))
    assert m["p99_e2el_ms"] == pytest.approx(1000 * np.percentile([r.latency_s for r in ok], 99))
    assert m["total_output_tokens"] == 16 and m["total_input_tokens"] == 3 + 2 + 1 + 2
    assert m["request_throughput"] == pytest.approx(4 / res.duration_s)
    assert m["request_goodput"] is None and m["token_count_mismatches"] == 0


def test_ttft_tpot_and_itl_follow_vllms_definitions_on_known_delays(url):
    res = run(url, reqs(["a", "b"], max_tokens=5), concurrency=1,
              extra_body={"test_first_delay": 0.15, "test_delay": 0.05})
    m = metrics.point_metrics(res, goodput_slo_ms=None)
    for r in res.records:
        assert r.success and r.ttft_s >= 0.15 and r.latency_s >= 0.15 + 4 * 0.05
        assert r.chunk_tokens == [1] * 5 and r.chunk_tokens_method == client.USAGE_PER_CHUNK
        assert r.usage_completion_tokens == 5 and r.text == " t0 t1 t2 t3 t4"
        assert sum(metrics.itls_s(r)) == pytest.approx(r.latency_s - r.ttft_s)
    itls = [g for r in res.records for g in metrics.itls_s(r)]
    assert len(itls) == 8 and m["mean_itl_ms"] == pytest.approx(1000 * np.mean(itls))
    tpots = [(r.latency_s - r.ttft_s) / 4 for r in res.records]
    assert m["mean_tpot_ms"] == pytest.approx(1000 * np.mean(tpots)) and m["mean_tpot_ms"] >= 30


def test_chunk_tokens_from_server_usage_else_one_per_chunk_assumed(url):
    body = {"test_tokens_per_chunk": 2}
    res = run(url, reqs(["a"], max_tokens=6), extra_body=body)
    (r,) = res.records
    assert r.chunk_tokens == [2, 2, 2] and r.chunk_tokens_method == client.USAGE_PER_CHUNK
    assert metrics.tpot_s(r) == pytest.approx((r.latency_s - r.ttft_s) / 5)  # 6 tokens, 3 chunks
    assert len(metrics.itls_s(r)) == 2  # ITL is per chunk, as vLLM counts it
    (r,) = run(url, reqs(["a"], max_tokens=3), extra_body={"test_usage": "none"}).records
    assert (r.chunk_tokens, r.chunk_tokens_method, r.usage_completion_tokens) == ([1, 1, 1], client.ONE_PER_CHUNK, None)
    (r,) = run(url, reqs(["a"], max_tokens=3), extra_body={"test_usage": "final"}).records
    assert r.chunk_tokens_method == client.ONE_PER_CHUNK and r.usage_completion_tokens == 3


def test_queue_time_shows_with_concurrency_1_and_stays_out_of_e2el(url):
    res = run(url, reqs(["a", "b", "c"], max_tokens=3), concurrency=1,
              extra_body={"test_first_delay": 0.1, "test_delay": 0.02})
    a, b, c = res.records
    assert res.peak_concurrency == 1
    assert a.queue_s < 0.05 and b.queue_s >= 0.1 and c.queue_s >= b.queue_s + 0.1
    assert all(r.send_s >= r.scheduled_s and r.latency_s < 1.0 for r in res.records)
    m = metrics.point_metrics(res, goodput_slo_ms=None)
    assert m["mean_e2el_ms"] == pytest.approx(1000 * np.mean([r.latency_s for r in res.records]))
    assert m["mean_e2el_with_queue_ms"] == pytest.approx(1000 * np.mean([r.latency_s + r.queue_s for r in res.records]))
    assert m["mean_queue_ms"] > 0 and m["max_concurrent_requests"] == 1
    free = run(url, reqs(["a", "b", "c"], max_tokens=3), extra_body={"test_first_delay": 0.2})
    assert free.peak_concurrency == 3 and all(r.queue_s < 0.1 for r in free.records)


def test_gamma_arrivals_are_seeded_and_their_mean_gap_is_one_over_the_rate():
    g = client.arrival_gaps(20000, 5.0, 1.0, seed=3)
    assert g == client.arrival_gaps(20000, 5.0, 1.0, seed=3) and g != client.arrival_gaps(20000, 5.0, 1.0, seed=4)
    assert np.mean(g) == pytest.approx(0.2, rel=0.03)
    for k in (0.5, 1.0, 4.0):  # gamma: CV^2 = 1 / shape
        gk = np.asarray(client.arrival_gaps(20000, 5.0, k, seed=1))
        assert gk.mean() == pytest.approx(0.2, rel=0.03) and gk.var() / gk.mean() ** 2 == pytest.approx(1 / k, rel=0.1)
    offsets = client.arrival_offsets(50, 5.0, 1.0, seed=0)
    assert offsets == sorted(offsets) and offsets[-1] == pytest.approx(50 / 5.0)  # vLLM's rescaling
    assert client.arrival_offsets(4, math.inf) == [0.0] * 4
    assert client.arrival_gaps(3, 4.0, math.inf) == [0.25] * 3
    with pytest.raises(ValueError):
        client.arrival_gaps(3, 0.0)


def test_warmups_run_first_one_at_a_time_and_are_excluded_but_counted(url):
    res = run(url, reqs(["w1", "w2", "a", "b", "c"], max_tokens=2, warm=2), extra_body={"test_first_delay": 0.05})
    w1, w2 = res.records[:2]
    assert [r.warmup for r in res.records] == [True, True, False, False, False]
    assert w1.send_s < w2.send_s < 0 and w2.send_s >= w1.send_s + w1.latency_s  # before the clock, in turn
    m = metrics.point_metrics(res, goodput_slo_ms=None)
    assert (m["warmup"], m["completed"], m["failed"]) == (2, 3, 0)
    measured = [r for r in res.records if not r.warmup]
    assert m["mean_ttft_ms"] == pytest.approx(1000 * np.mean([r.ttft_s for r in measured]))
    assert len(metrics.save_result(m, res, meta={})["ttfts"]) == 3


def test_max_duration_stops_sending_and_flags_the_point(url):
    res = run(url, reqs(["a"] * 20, max_tokens=1), request_rate=10.0, max_duration_s=0.5, seed=1)
    assert res.not_sent > 0 and len(res.records) + res.not_sent == 20
    assert all(r.scheduled_s <= 0.5 + 0.1 for r in res.records)
    m = metrics.point_metrics(res, goodput_slo_ms=None)
    assert m["saturated"] and m["not_sent"] == res.not_sent
    assert metrics.save_result(m, res, meta={})["num_prompts"] == 20


def test_an_unreachable_url_gives_failed_records_fast():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t = time.perf_counter()
    res = run(f"http://127.0.0.1:{port}", reqs(["a", "b", "c"]), request_timeout_s=30.0)
    assert time.perf_counter() - t < 5.0
    assert len(res.records) == 3 and all("ConnectError" in r.error and not r.success for r in res.records)
    m = metrics.point_metrics(res, goodput_slo_ms={"ttft": 100})
    assert (m["completed"], m["failed"], m["mean_ttft_ms"], m["request_goodput"]) == (0, 3, None, 0.0)


def test_a_planted_api_token_is_sent_but_appears_in_no_record_error_or_result(url):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    Handler.seen.clear()
    res = run(url, reqs(["a", "echo500"]), headers=headers)
    assert any(s["headers"].get("Authorization") == f"Bearer {TOKEN}" for s in Handler.seen)  # passed through
    assert res.records[1].http_status == 500 and "***" in res.records[1].error  # the echo, redacted
    m = metrics.point_metrics(res, goodput_slo_ms=None)
    out = json.dumps([asdict(res), m, metrics.save_result(m, res, meta={"backend": "vllm"})])
    assert TOKEN not in out and "sk-planted" not in out


def test_chat_api_sends_messages_and_reads_delta_content(url):
    Handler.seen.clear()
    res = run(url, reqs(["hello there"], max_tokens=3), api="chat", extra_body={"min_tokens": 3})
    (r,) = res.records
    body = Handler.seen[-1]["body"]
    assert Handler.seen[-1]["path"] == "/v1/chat/completions" and body["messages"] == [
        {"role": "user", "content": "hello there"}]
    assert body["max_completion_tokens"] == body["max_tokens"] == 3 and body["min_tokens"] == 3
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert r.success and r.text == " t0 t1 t2" and r.usage_prompt_tokens == 2


def test_completions_body():
    b = client.request_body("completions", "m", ServedRequest(0, "p", 1, 7), {"ignore_eos": True})
    assert b == {"model": "m", "prompt": "p", "max_tokens": 7, "temperature": 0, "stream": True,
                 "stream_options": {"include_usage": True, "continuous_usage_stats": True}, "ignore_eos": True}


def _rec(i, ttft, times, tokens=None, ok=True, queue=0.0, usage=None, max_tokens=None):
    tokens = tokens or [1] * len(times)
    return RequestRecord(index=i, warmup=False, input_tokens=10, max_tokens=max_tokens or sum(tokens),
                         scheduled_s=float(i), send_s=float(i) + queue, queue_s=queue, ttft_s=ttft,
                         latency_s=times[-1] if times else None, chunk_times_s=times, chunk_tokens=tokens,
                         usage_completion_tokens=usage, success=ok, error="" if ok else "boom")


def _result(records, rate=math.inf, duration=4.0):
    return PointResult(records=records, duration_s=duration, not_sent=0, client_cpu_s=0.1,
                       loop_lag_s={"mean": 0.001, "max": 0.002, "p99": 0.002}, peak_concurrency=2,
                       request_rate=rate)


def test_metrics_on_known_records_match_vllms_formulas():
    recs = [_rec(0, 0.1, [0.1, 0.2, 0.4]), _rec(1, 0.3, [0.3, 0.35], queue=0.5), _rec(2, 0.2, [0.2], usage=1),
            _rec(3, None, [], ok=False)]
    m = metrics.point_metrics(_result(recs), goodput_slo_ms={"ttft": 250, "tpot": 120})
    assert m["median_ttft_ms"] == pytest.approx(200) and m["p90_ttft_ms"] == pytest.approx(280)  # linear
    assert m["mean_tpot_ms"] == pytest.approx(1000 * np.mean([0.15, 0.05]))  # the 1-token request has none
    assert m["mean_itl_ms"] == pytest.approx(1000 * np.mean([0.1, 0.2, 0.05]))
    assert m["std_e2el_ms"] == pytest.approx(1000 * np.std([0.4, 0.35, 0.2]))
    assert m["mean_e2el_with_queue_ms"] == pytest.approx(1000 * np.mean([0.4, 0.85, 0.2]))
    assert m["request_goodput"] == pytest.approx(1 / 4.0)  # only request 2 meets ttft <= 250 and tpot <= 120
    assert (m["completed"], m["failed"], m["total_output_tokens"], m["saturated"]) == (3, 1, 6, False)
    assert m["max_concurrent_requests"] == 2 and m["loop_lag_p99_s"] == 0.002


def test_saturation_and_token_count_mismatches_are_flagged():
    recs = [_rec(0, 0.1, [0.1, 0.2], usage=3), _rec(1, 0.1, [0.1, 0.2], max_tokens=5), _rec(2, 0.1, [0.1, 0.2])]
    m = metrics.point_metrics(_result(recs, rate=2.0, duration=3.0), goodput_slo_ms=None)
    assert m["token_count_mismatches"] == 2 and m["achieved_request_rate"] == pytest.approx(1.0) and m["saturated"]
    assert not metrics.point_metrics(_result(recs, rate=1.0, duration=3.0), goodput_slo_ms=None)["saturated"]
    with pytest.raises(ValueError, match="goodput SLO keys"):
        metrics.point_metrics(_result(recs), goodput_slo_ms={"latency": 1})


def test_save_result_has_vllms_keys(mixed):
    _, res = mixed
    m = metrics.point_metrics(res, goodput_slo_ms={"e2el": 10_000})
    doc = metrics.save_result(m, res, meta={"backend": "vllm", "label": "x", "model_id": "m", "tokenizer_id": "m"})
    core = {"date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts", "request_rate",
            "burstiness", "max_concurrency", "duration", "completed", "failed", "total_input_tokens",
            "total_output_tokens", "request_throughput", "request_goodput", "output_throughput",
            "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times",
            "queue_times", "generated_texts", "errors", "max_output_tokens_per_s", "max_concurrent_requests",
            "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms",
            "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms", "mean_client_queue_time_ms",
            "p99_e2el_including_client_queue_ms"}
    assert core <= doc.keys()
    assert doc["request_rate"] == "inf" and doc["completed"] == 4 and len(doc["ttfts"]) == 7
    assert doc["ttfts"][3] is None and doc["output_lens"][3] == 0 and doc["errors"][3].startswith("HTTP 500")
    assert doc["request_goodput"] == pytest.approx(doc["request_throughput"])
    json.dumps(doc, allow_nan=False)
