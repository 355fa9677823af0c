"""A model served somewhere else: an OpenAI-compatible endpoint, benchmarked by the serving client with no
server step. Serving scenarios only (no in-process adapter).

Options: ``url`` (the server root, e.g. ``http://10.0.0.5:8000``), ``model`` (the name its requests carry),
``token_env`` (the *name* of an environment variable holding a bearer token: the value is read when the job
runs and never written anywhere), ``length_options`` (which server's request fields ask for exactly
``max_new_tokens``: a request that stops early fails its count check either way), ``metrics_path``.

The benchmark entry still names a model and artifact: the tokenizer our recount uses and what the user says
the endpoint serves. llmbench cannot check that claim, so every row's runtime says ``artifact_checked: false``
and the serving table's note says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmbench.core.options import Option, REQUIRED

ENV = "hf"  # the client, the tokenizer and httpx: nothing engine-specific is installed
ACCEPTS = ("hf", "gguf")  # the artifact only lends its HF tokenizer (a GGUF artifact carries one in tokenizer/)

OPTIONS = {
    "url": Option(str, REQUIRED, "the endpoint's root URL (http://host:port, no /v1)",
                  check=lambda u: None if u.startswith(("http://", "https://")) and "/v1" not in u
                  else "expected http(s)://host:port, without /v1"),
    "model": Option(str, REQUIRED, "the model name the endpoint serves (the `model` field of each request)"),
    "token_env": Option((str, None), None, "name of the environment variable holding a bearer token (null: none)"),
    "length_options": Option(str, "vllm", "request fields that ask for exactly max_new_tokens",
                             choices=("vllm", "llamacpp", "none")),
    "metrics_path": Option((str, None), None, "the endpoint's Prometheus path (vLLM: /metrics; null: not scraped)"),
}

_LENGTH_FIELDS = {
    "vllm": lambda n, end: {"ignore_eos": True, "min_tokens": n},
    "llamacpp": lambda n, end: {"min_tokens": n, "logit_bias": {str(i): -100 for i in end}},
    "none": lambda n, end: {},
}


def endpoint(opts: dict[str, Any]):
    """The endpoint as the job uses it; the token is read here, from the variable the config names."""
    from llmbench.core.server import RemoteEndpoint

    headers = {}
    if opts["token_env"]:
        token = os.environ.get(opts["token_env"])
        if not token:
            raise ValueError(f"variant option token_env = {opts['token_env']!r}: that environment variable is "
                             "not set (or empty) where the job runs")
        headers["Authorization"] = f"Bearer {token}"
    facts = {"server": "remote endpoint", "url": opts["url"], "token_env": opts["token_env"],
             "artifact_checked": False, "length_options": opts["length_options"]}
    fields = _LENGTH_FIELDS[opts["length_options"]]
    return RemoteEndpoint(url=opts["url"].rstrip("/"), model_name=opts["model"], headers=headers,
                          metrics_path=opts["metrics_path"], facts=facts,
                          request_options=lambda n, end_ids: fields(int(n), end_ids))


def tokenizer_dir(artifact_dir: Path, manifest: dict[str, Any]) -> Path:
    """The artifact's HF tokenizer: its own files, or the tokenizer/ a GGUF artifact carries."""
    sub = Path(artifact_dir) / "tokenizer"
    return sub if sub.is_dir() else Path(artifact_dir)
