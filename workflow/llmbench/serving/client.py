"""A streaming client for OpenAI-compatible servers: one sweep point = a list of requests sent with vLLM's arrival
process (``vllm bench serve``'s ``get_request``) and concurrency bound, each timed chunk by chunk.

Timing follows vLLM's ``endpoint_request_func``: TTFT is the first chunk carrying text minus the send time, the
latency (e2el) is the last such chunk minus the send time, and the time a request waited for a concurrency slot
is kept apart as its queue time (send - scheduled). Every request becomes a :class:`RequestRecord`, a failed one
with its error (HTTP status and body, timeout, connection error, a stream cut short); the point goes on. A
request the point had no time for (``max_duration_s``) is not sent and only counted.

Tokens per chunk come from the server's own count when it sends ``usage`` on every chunk (vLLM's
``continuous_usage_stats``: the delta of ``completion_tokens``); otherwise each chunk is assumed to be one token
and the record says so. The request headers (an API key) go to httpx only: no record holds them, and an error
text that repeats one of their values has it replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal

import httpx
import numpy as np

USAGE_PER_CHUNK = "server usage per chunk"
ONE_PER_CHUNK = "one per chunk (assumed)"
API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
LAG_TICK_S = 0.01       # the loop-lag probe sleeps this long and records how late it woke
ERROR_BODY_CHARS = 500  # of an HTTP error's body, kept in the record's error


@dataclass
class ServedRequest:
    """One request of a point: the prompt as sent, our own count of its tokens, the new tokens asked for."""

    index: int
    prompt: str
    input_tokens: int
    max_tokens: int
    warmup: bool = False


@dataclass
class RequestRecord:
    """What the client saw of one request; every field plain JSON. Times are seconds: ``scheduled_s`` and
    ``send_s`` from the point's start (negative for warm-ups, which run before it), the others from the send.
    A failed record keeps what it saw; its ``latency_s`` is then the time until it failed."""

    index: int
    warmup: bool
    input_tokens: int                 # the caller's count of the prompt's tokens
    max_tokens: int                   # new tokens requested
    scheduled_s: float                # when the arrival process released it
    send_s: float                     # when the HTTP request was sent (after waiting for a concurrency slot)
    queue_s: float                    # send_s - scheduled_s: client queue time, not part of latency_s
    ttft_s: float | None = None       # first chunk carrying text - send
    latency_s: float | None = None    # last chunk carrying text - send (e2el without the queue)
    chunk_times_s: list[float] = field(default_factory=list)  # arrival of every chunk carrying text - send
    chunk_tokens: list[int] = field(default_factory=list)     # tokens in each of those chunks
    chunk_tokens_method: str = ONE_PER_CHUNK
    text: str = ""
    usage_prompt_tokens: int | None = None      # the server's counts, from the last usage it sent
    usage_completion_tokens: int | None = None
    http_status: int | None = None
    finish_reason: str | None = None  # the server's last finish_reason (length: it stopped at max_tokens)
    error: str = ""
    success: bool = False


@dataclass
class PointResult:
    """One sweep point: every record (warm-ups first, then the measured ones in request order) and the facts
    that say whether the client itself kept up (CPU, event-loop lag, measured concurrency)."""

    records: list[RequestRecord]
    duration_s: float                 # first send of a measured request -> last end of one
    not_sent: int                     # measured requests the point had no time for (max_duration_s)
    client_cpu_s: float               # time.process_time() of this process over the measured part
    loop_lag_s: dict[str, float | None]  # mean / max / p99 of how late a 10 ms sleep woke
    peak_concurrency: int             # most measured requests in flight at once
    request_rate: float = math.inf    # the offered rate (inf: all at once)
    burstiness: float = 1.0
    concurrency: int | None = None    # the bound (None: none)


class _Failed(Exception):
    """A request failed for a reason the message states in full."""


# --- arrivals ------------------------------------------------------------------------------------------------

def arrival_gaps(n: int, request_rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """The ``n`` gaps (s) before each request, drawn as vLLM's ``get_request`` does: gamma with shape =
    burstiness and scale = 1 / (rate * burstiness), so the mean gap is 1 / rate (burstiness 1: Poisson; below 1
    burstier, above more even; inf: constant). An infinite rate has no gaps. Seeded numpy Generator."""
    if request_rate <= 0 or burstiness <= 0:
        raise ValueError(f"request_rate and burstiness must be positive, got {request_rate} and {burstiness}")
    if math.isinf(request_rate):
        return [0.0] * n
    if math.isinf(burstiness):
        return [1.0 / request_rate] * n
    rng = np.random.default_rng(seed)
    return rng.gamma(shape=burstiness, scale=1.0 / (request_rate * burstiness), size=n).tolist()


def arrival_offsets(n: int, request_rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """When each request is released, in s from the point's start: the cumulative gaps, rescaled (as vLLM
    does without a ramp-up) so the last is exactly n / rate, which steadies the offered rate across seeds."""
    cum = np.cumsum(arrival_gaps(n, request_rate, burstiness, seed))
    if n and not math.isinf(request_rate) and cum[-1] > 0:
        cum = cum * ((n / request_rate) / cum[-1])
    return [float(x) for x in cum]


# --- one request ---------------------------------------------------------------------------------------------

def request_body(api: str, model: str, req: ServedRequest, extra_body: dict | None) -> dict[str, Any]:
    """The JSON body: greedy, streamed, usage on every chunk and at the end; ``extra_body`` merged on top."""
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens, "temperature": 0, "stream": True,
                            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": req.prompt}]
        body["max_completion_tokens"] = req.max_tokens
    elif api == "completions":
        body["prompt"] = req.prompt
    else:
        raise ValueError(f"api must be 'completions' or 'chat', got {api!r}")
    return {**body, **(extra_body or {})}


def _chunk_text(data: dict, api: str) -> str | None:
    """The text a chunk carries (completions: choices[0].text; chat: choices[0].delta.content), or None."""
    choices = data.get("choices") or []
    if not choices:
        return None
    if api == "chat":
        return (choices[0].get("delta") or {}).get("content")
    return choices[0].get("text")


@dataclass
class _Stream:
    """The SSE stream of one request as it arrives: token chunks with their times and server counts."""

    api: str
    t_send: float
    times: list[float] = field(default_factory=list)
    usage_deltas: list[int | None] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    completion_so_far: int = 0
    usage: dict | None = None
    finish_reason: str | None = None
    done: bool = False

    def feed(self, line: str, now: float) -> None:
        """One line of the stream. Only ``data:`` lines count (comments, ``event:`` and blank lines do not).
        A chunk is a token chunk when it carries text, or (empty text) when the server counts new tokens in it."""
        if not line.startswith("data:"):
            return
        payload = line[len("data:"):].strip()
        if payload == "[DONE]":
            self.done = True
            return
        data = json.loads(payload)
        if data.get("error") and not data.get("choices"):
            raise _Failed(f"the server sent an error in the stream: {str(data['error'])[:ERROR_BODY_CHARS]}")
        usage = data.get("usage") or None
        completion = usage.get("completion_tokens") if usage else None
        delta = completion - self.completion_so_far if completion is not None else None
        text = _chunk_text(data, self.api)
        reason = ((data.get("choices") or [{}])[0] or {}).get("finish_reason")
        if reason:
            self.finish_reason = reason
        if text or (delta and data.get("choices")):
            self.times.append(now - self.t_send)
            self.parts.append(text or "")
            self.usage_deltas.append(delta)
        if completion is not None:
            self.completion_so_far = completion
        if usage:
            self.usage = usage

    def chunk_tokens(self) -> tuple[list[int], str]:
        """Tokens per token chunk and how they were counted."""
        if self.usage_deltas and all(d is not None for d in self.usage_deltas):
            return [int(d) for d in self.usage_deltas], USAGE_PER_CHUNK
        return [1] * len(self.times), ONE_PER_CHUNK


async def _error_body(resp: httpx.Response) -> str:
    """The first ERROR_BODY_CHARS characters of an error response's body (read no further)."""
    got = b""
    async for part in resp.aiter_bytes():
        got += part
        if len(got) >= 4 * ERROR_BODY_CHARS:
            break
    return got.decode("utf-8", errors="replace")[:ERROR_BODY_CHARS]


async def _stream(client: httpx.AsyncClient, url: str, body: dict, st: _Stream, rec: RequestRecord) -> None:
    """Send one request and read its stream into ``st``; raise on anything that makes it a failure."""
    async with client.stream("POST", url, json=body) as resp:
        rec.http_status = resp.status_code
        if resp.status_code != 200:
            raise _Failed(f"HTTP {resp.status_code}: {await _error_body(resp)}")
        async for line in resp.aiter_lines():
            st.feed(line, time.perf_counter())
    if not st.done:
        raise _Failed("the stream ended without data: [DONE]")
    if not st.times:
        raise _Failed("no chunk carried text (vLLM: never received a valid chunk to calculate TTFT)")


def _redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def _secrets(headers: dict | None) -> list[str]:
    """Every header value, and its last word (the token of "Bearer <token>"), longest first."""
    out = set()
    for v in (headers or {}).values():
        v = str(v)
        out.update(x for x in (v, v.split()[-1] if v.split() else "") if len(x) >= 4)
    return sorted(out, key=len, reverse=True)


def _finish(rec: RequestRecord, st: _Stream, t_end: float) -> None:
    rec.chunk_times_s = list(st.times)
    rec.chunk_tokens, rec.chunk_tokens_method = st.chunk_tokens()
    rec.text = "".join(st.parts)
    rec.finish_reason = st.finish_reason
    if st.usage:
        rec.usage_prompt_tokens = st.usage.get("prompt_tokens")
        rec.usage_completion_tokens = st.usage.get("completion_tokens")
    rec.ttft_s = st.times[0] if st.times else None
    rec.latency_s = st.times[-1] if st.times and not rec.error else t_end - st.t_send
    rec.success = not rec.error


@dataclass
class _Sender:
    """What every request of a point shares: the client, the URL, the body's fixed parts, the timeout."""

    client: httpx.AsyncClient
    url: str
    api: str
    model: str
    extra_body: dict | None
    timeout_s: float
    secrets: list[str]

    async def send(self, req: ServedRequest, scheduled_s: float, t0: float) -> tuple[RequestRecord, float]:
        """Send ``req`` now; (its record, perf_counter at its end). Never raises for the request's own failure."""
        body = request_body(self.api, self.model, req, self.extra_body)
        t_send = time.perf_counter()
        rec = RequestRecord(index=req.index, warmup=req.warmup, input_tokens=req.input_tokens,
                            max_tokens=req.max_tokens, scheduled_s=scheduled_s, send_s=t_send - t0,
                            queue_s=t_send - t0 - scheduled_s)
        st = _Stream(self.api, t_send)
        try:
            await asyncio.wait_for(_stream(self.client, self.url, body, st, rec), self.timeout_s)
        except _Failed as e:
            rec.error = str(e)
        except (asyncio.TimeoutError, httpx.TimeoutException) as e:
            rec.error = (f"timed out: no complete response within request_timeout_s = {self.timeout_s:g} s"
                         + (f" ({type(e).__name__})" if isinstance(e, httpx.TimeoutException) else ""))
        except Exception as e:  # noqa: BLE001 - a connection error or a garbled stream is this request's failure
            rec.error = f"{type(e).__name__}: {e}"
        t_end = time.perf_counter()
        rec.error = _redact(rec.error, self.secrets)
        _finish(rec, st, t_end)
        return rec, t_end


# --- one point -----------------------------------------------------------------------------------------------

class _Point:
    """The measured part of a point: releases requests on schedule, bounds concurrency, counts what it skips."""

    def __init__(self, send: Callable[..., Awaitable[tuple[RequestRecord, float]]], concurrency: int | None,
                 max_duration_s: float | None):
        self.send = send
        self.slots = asyncio.Semaphore(concurrency) if concurrency else contextlib.nullcontext()
        self.max_duration_s = max_duration_s
        self.t0 = 0.0
        self.in_flight = self.peak = self.not_sent = 0
        self.ends: list[float] = []

    def _past_deadline(self, offset_s: float) -> bool:
        return self.max_duration_s is not None and offset_s > self.max_duration_s

    async def _one(self, req: ServedRequest, scheduled_s: float) -> RequestRecord | None:
        async with self.slots:
            if self._past_deadline(time.perf_counter() - self.t0):  # got a slot only after the point's time
                self.not_sent += 1
                return None
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                rec, t_end = await self.send(req, scheduled_s, self.t0)
            finally:
                self.in_flight -= 1
        self.ends.append(t_end)
        return rec

    async def run(self, reqs: list[ServedRequest], offsets: list[float]) -> list[RequestRecord]:
        """Release each request at its offset (none after max_duration_s); wait for all; records in order."""
        self.t0 = time.perf_counter()
        tasks = []
        for req, offset in zip(reqs, offsets):
            if self._past_deadline(offset):
                self.not_sent += len(reqs) - len(tasks)
                break
            delay = self.t0 + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(req, time.perf_counter() - self.t0)))
        done = await asyncio.gather(*tasks)
        return [r for r in done if r is not None]

    def duration_s(self, records: list[RequestRecord]) -> float:
        if not records:
            return 0.0
        return max(self.ends) - (self.t0 + min(r.send_s for r in records))


async def _watch_lag(samples: list[float]) -> None:
    """Sleep LAG_TICK_S again and again and record how late each wake-up was (a busy client loop is late)."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        samples.append(max(0.0, time.perf_counter() - t - LAG_TICK_S))


def lag_stats(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"mean": None, "max": None, "p99": None}
    a = np.asarray(samples)
    return {"mean": float(a.mean()), "max": float(a.max()), "p99": float(np.percentile(a, 99))}


def _client(concurrency: int | None, n: int, timeout_s: float, headers: dict | None) -> httpx.AsyncClient:
    """One client for the point: a connection for every request that may be in flight, no proxy."""
    limit = max(1, concurrency or n)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), trust_env=False, headers=headers or {},
                             limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit))


async def run_point(base_url: str, model: str, requests: list[ServedRequest], *,
                    api: Literal["completions", "chat"] = "completions", extra_body: dict | None = None,
                    concurrency: int | None = None, request_rate: float = math.inf, burstiness: float = 1.0,
                    seed: int = 0, request_timeout_s: float = 600.0, max_duration_s: float | None = None,
                    headers: dict | None = None) -> PointResult:
    """Run one sweep point against ``base_url`` (``http://host:port``; the API path is added): the warm-ups
    one after another, then the point's clock starts and the measured requests are released by the arrival
    process (:func:`arrival_offsets`), at most ``concurrency`` in flight. Returns every record."""
    warm = [r for r in requests if r.warmup]
    measured = [r for r in requests if not r.warmup]
    offsets = arrival_offsets(len(measured), request_rate, burstiness, seed)
    async with _client(concurrency, len(measured), request_timeout_s, headers) as client:
        sender = _Sender(client, base_url.rstrip("/") + API_PATHS[api], api, model, extra_body,
                         request_timeout_s, _secrets(headers))
        warm_records = await _warm_up(sender, warm)
        point, samples = _Point(sender.send, concurrency, max_duration_s), []
        lag = asyncio.create_task(_watch_lag(samples))
        cpu0 = time.process_time()
        records = await point.run(measured, offsets)
        cpu = time.process_time() - cpu0
        lag.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag
    t0_shift = point.t0
    for r in warm_records:  # warm-up times from the point's start too (they are negative)
        r.scheduled_s, r.send_s = r.scheduled_s - t0_shift, r.send_s - t0_shift
    return PointResult(records=warm_records + records, duration_s=point.duration_s(records),
                       not_sent=point.not_sent, client_cpu_s=cpu, loop_lag_s=lag_stats(samples),
                       peak_concurrency=point.peak, request_rate=request_rate, burstiness=burstiness,
                       concurrency=concurrency)


async def _warm_up(sender: _Sender, warm: list[ServedRequest]) -> list[RequestRecord]:
    """The warm-ups, one at a time; their times are first taken from the perf_counter origin (0) and shifted
    to the point's start by the caller once that is known."""
    records = []
    for req in warm:
        rec, _ = await sender.send(req, time.perf_counter(), 0.0)
        records.append(rec)
    return records
