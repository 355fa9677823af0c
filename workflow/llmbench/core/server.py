"""What an engine module hands the serving job (the ``server`` and ``endpoint`` hooks, core/engine.py): the
command of a server to launch, or a server somebody else runs, and the readiness check both answer to."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


class ServerNotReady(RuntimeError):
    """The server exited or did not answer its readiness check in time; the message names its log."""


@dataclass(frozen=True)
class ServerCommand:
    """How an engine serves an artifact: the command, its extra environment, and what the client asks for."""

    argv: list[str]
    model_name: str                          # the `model` field requests carry
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/v1/models"           # GET answers 200 once the model is loaded
    metrics_path: str | None = None          # Prometheus metrics (vLLM: /metrics); None: the server has none
    metrics_prefixes: tuple[str, ...] = ("vllm:",)  # the metric names kept from metrics_path
    cwd: str | None = None                   # where the server runs (None: the job's directory)
    facts: dict = field(default_factory=dict)  # what the launch fixes (threads, dtype, prefix reuse), recorded


def http_ok(url: str, timeout_s: float, headers: dict | None = None) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=timeout_s, trust_env=False, headers=headers or {}).status_code == 200
    except httpx.HTTPError:
        return False


class RemoteEndpoint:
    """A server somebody else runs (engines/remote.py): nothing to start or stop. Entering checks, within
    ``ready_timeout_s``, that ``GET /v1/models`` answers and lists the model, so a wrong URL, an unreachable
    host or a rejected token fails at once with what was wrong (the token itself is never shown)."""

    def __init__(self, url: str, model_name: str, headers: dict[str, str], metrics_path: str | None,
                 facts: dict, request_options: Callable[[int, list[int]], dict], ready_timeout_s: float = 10.0):
        self.url, self.model_name, self.headers = url, model_name, headers
        self.metrics_path, self.facts, self.request_options = metrics_path, facts, request_options
        self.ready_timeout_s, self.ready_s = ready_timeout_s, None

    def __enter__(self) -> RemoteEndpoint:
        import httpx

        t0 = time.monotonic()
        where = f"remote endpoint {self.url} (variant option url)"
        try:
            r = httpx.get(self.url + "/v1/models", headers=self.headers, timeout=self.ready_timeout_s,
                          trust_env=False)
        except httpx.HTTPError as e:
            raise ServerNotReady(f"{where} is unreachable: {type(e).__name__}: {e}") from None
        if r.status_code in (401, 403):
            raise ServerNotReady(f"{where} rejected the credentials (HTTP {r.status_code}); the token comes from "
                                 f"the environment variable named by token_env = {self.facts.get('token_env')!r}")
        if r.status_code != 200:
            raise ServerNotReady(f"{where}: GET /v1/models answered HTTP {r.status_code}; url must be the root of "
                                 "an OpenAI-compatible server (http://host:port, the client adds /v1/...)")
        try:
            served = [m.get("id") for m in r.json().get("data", [])]
        except (ValueError, AttributeError):
            raise ServerNotReady(f"{where}: GET /v1/models did not answer an OpenAI model list") from None
        if self.model_name not in served:
            raise ServerNotReady(f"{where} serves {served}, not model = {self.model_name!r} (variant option model)")
        self.ready_s = time.monotonic() - t0
        return self

    def __exit__(self, *exc) -> None:
        return None

    def alive(self) -> bool:
        """It still answers GET /v1/models (asked after each sweep point: a dead endpoint fails the job)."""
        return http_ok(self.url + "/v1/models", timeout_s=5.0, headers=self.headers)
