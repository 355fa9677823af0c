"""What a serving scenario sends: its sweep points and, per point, the requests (prompt text, our token count).

Datasets (``dataset`` key):
  prompts        the scenario's prompt file (the latency study's 9 prompts), cycled to ``num_requests``
  random         prompts of exactly ``input_tokens`` random token ids (decoded to text), new ones per point
  shared_prefix  one random prefix of ``prefix_tokens`` shared by every request of the job, plus a random
                 suffix per request: the case prefix caching is for

Prompts differ between sweep points for ``random`` (a warm prefix cache would otherwise inflate later points);
``prompts`` repeats the file by design (what the latency study sent), so a server with a prefix cache sees the
same texts at every point: the serving table records the server's prefix-cache state beside the figures.
Prompts go through the artifact's chat template for ``api: completions`` (as the latency scenario encodes them);
``api: chat`` sends the raw prompt as a user message and the server applies its template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmbench.core import prompts as prompt_files
from llmbench.serving.client import ServedRequest


# what a serving scenario gets for the keys it leaves out (the schema gives them no defaults, so a latency
# scenario does not carry them)
DEFAULTS = {"dataset": "prompts", "api": "completions", "num_requests": 16, "warmup_requests": 1,
            "burstiness": 1.0, "seed": 0, "max_duration_s": None, "ready_timeout_s": 600.0,
            "request_timeout_s": 600.0, "goodput_slo_ms": None}


def with_defaults(sc: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **{k: v for k, v in sc.items() if v is not None or k not in DEFAULTS}}


@dataclass(frozen=True)
class SweepPoint:
    index: int
    concurrency: int | None          # at most this many requests in flight (None: no bound)
    request_rate: float              # offered requests/s (inf: all at once)

    @property
    def label(self) -> str:
        rate = "inf" if math.isinf(self.request_rate) else f"{self.request_rate:g}"
        return f"c={self.concurrency if self.concurrency is not None else 'inf'},rate={rate}"


def sweep_points(sc: dict[str, Any]) -> list[SweepPoint]:
    """Every (concurrency, request rate) pair of the scenario, concurrency outer: ``concurrency`` alone is a
    fixed-concurrency sweep (all requests offered at once), ``request_rate`` alone a rate sweep (no bound)."""
    conc = sc.get("concurrency") or [None]
    rates = [float(r) for r in (sc.get("request_rate") or [math.inf])]
    pairs = [(c, r) for c in conc for r in rates]
    return [SweepPoint(i, c, r) for i, (c, r) in enumerate(pairs)]


class PromptText:
    """Prompt text as sent and our count of its tokens, from the artifact's HF tokenizer."""

    def __init__(self, tokenizer, api: str):
        self.tok, self.api = tokenizer, api

    def templated(self, prompt: str) -> str:
        """The prompt with the chat template applied, as the model sees it (chat: the server applies it)."""
        if not self.tok.chat_template:
            return prompt
        return self.tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=False)

    def count(self, text: str) -> int:
        """Tokens of the text as sent (completions: the server tokenizes it with special tokens parsed)."""
        return len(self.tok(text, add_special_tokens=True)["input_ids"])

    def _random_ids(self, rng: np.random.Generator, n: int) -> list[int]:
        special = set(self.tok.all_special_ids)
        return [int(i) for i in rng.integers(0, len(self.tok), size=n * 2 + 8) if int(i) not in special][:n]

    def random_text(self, rng: np.random.Generator, n: int) -> str:
        """Text of random tokens that encodes to exactly ``n`` tokens (no special tokens): decoded ids can merge
        or split when encoded again, so the ids are re-encoded, cut or topped up until the count holds (as
        vLLM's random dataset adjusts its prompts). ValueError if it does not settle."""
        ids = self._random_ids(rng, n)
        for _ in range(20):
            text = self.tok.decode(ids, skip_special_tokens=True)
            again = self.tok(text, add_special_tokens=False)["input_ids"]
            if len(again) == n:
                return text
            ids = again[:n] if len(again) > n else again + self._random_ids(rng, n - len(again))
        raise ValueError(f"could not make a random prompt of exactly {n} tokens")


def _texts(sc: dict[str, Any], point: SweepPoint, pt: PromptText, n: int) -> list[tuple[str, str]]:
    """(prompt id, raw prompt) for n requests of one point."""
    kind = sc.get("dataset", "prompts")
    if kind == "prompts":
        items = prompt_files.load(sc["prompts"])
        return [(str(items[i % len(items)]["id"]), items[i % len(items)]["prompt"]) for i in range(n)]
    seed = int(sc.get("seed", 0))
    rng = np.random.default_rng([seed, point.index])  # new prompts per point
    if kind == "random":
        return [(f"random-{point.index}-{i}", pt.random_text(rng, int(sc["input_tokens"]))) for i in range(n)]
    prefix = pt.random_text(np.random.default_rng([seed, 10**6]), int(sc["prefix_tokens"]))  # one per job
    suffix = int(sc["input_tokens"]) - int(sc["prefix_tokens"])
    return [(f"prefix-{point.index}-{i}", prefix + " " + pt.random_text(rng, max(1, suffix))) for i in range(n)]


def requests_for(sc: dict[str, Any], point: SweepPoint, pt: PromptText) -> tuple[list[ServedRequest], list[str]]:
    """(the point's requests, warm-ups first; their prompt ids). Warm-ups are the point's first prompts."""
    n, warm = int(sc["num_requests"]), int(sc.get("warmup_requests", 1))
    texts = _texts(sc, point, pt, n)
    plan = [(pid, text, True) for pid, text in texts[:warm]] + [(pid, text, False) for pid, text in texts]
    reqs, ids = [], []
    for i, (pid, raw, is_warm) in enumerate(plan):
        text = pt.templated(raw)
        reqs.append(ServedRequest(index=i, prompt=raw if pt.api == "chat" else text, input_tokens=pt.count(text),
                                  max_tokens=int(sc["max_new_tokens"]), warmup=is_warm))
        ids.append(pid)
    return reqs, ids
