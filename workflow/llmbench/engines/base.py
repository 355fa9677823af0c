"""The one small interface every engine adapter implements.

An adapter only loads and executes (optimum-benchmark's backend/scenario split); timing, token accounting
and rows belong to the scenario. ``generate`` must yield each new token id as soon as the engine has it, so
the harness timestamps tokens the same way for every engine: ``generate`` calls ``on_token(id)`` the moment
the engine hands a new token to the host, and returns a ``Generation``: the engine's own list of output ids
plus the per-request facts it knows. It must produce exactly ``max_new_tokens`` tokens with the end tokens
masked (never emitted, as HF ``min_new_tokens`` masks them); the scenario checks both counts and the ids and
marks the request failed otherwise (a failed row; the job fails only when no measured request succeeded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (its library cannot be installed, the artifact could not be built, no
    such device). Raised by ``load``; the job then writes one row with status ``unverified`` and this
    reason instead of numbers. Never a fallback to another engine."""


@dataclass(frozen=True)
class Placement:
    """Where a variant runs, declared by the adapter from its resolved options (``placement(options)`` in the
    engine module): the planner claims ``gpus`` as the job's ``gpu=`` resource, the job measures the read
    bandwidth of ``device`` for the roofline."""

    device: str                      # "cpu" or "cuda" (what the roofline measures)
    gpus: int = 0                    # GPUs the job claims (tensor parallel: N)
    cpu_threads: int | None = None   # threads the engine computes with on the CPU (None: the library's default)


@dataclass
class Generation:
    """What ``generate`` returns: the engine's own new token ids (obtained independently of ``on_token``, so
    the harness can check the two agree) and per-request facts only the engine knows (perf counters, chunk
    sizes); they go into this request's row, never into the job-wide ``runtime``."""

    ids: list[int]
    engine_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loaded:
    """What actually ran, read back from the engine after loading (not what was asked for)."""

    engine_version: str
    device: str                      # e.g. "cpu", "cuda:0"
    device_name: str                 # e.g. "NVIDIA H100 80GB HBM3" or the CPU model
    # Bytes of all weight tensors as the engine runs them (every TP worker's shard together; the input
    # embedding table counted once, also when tied): the engine's own figure, never the artifact folder's size.
    # An adapter that learns the true figure only while running (HF unpacks compressed-tensors weights at the
    # first forward) keeps this object and updates the fields; the job reads them after the run, so rows
    # record the weights as run. analysis/roofline.decode_bytes turns these facts into bytes per decode step.
    weight_bytes: int
    runtime: dict[str, Any] = field(default_factory=dict)  # dtype, attention backend, compile, cache, kernels
    library_versions: dict[str, str | None] = field(default_factory=dict)
    weight_bytes_method: str = ""              # what the adapter counted, in words
    input_embedding_bytes: int | None = None   # the input embedding table as run (part of weight_bytes)
    embedding_row_bytes: int | None = None     # one row of it: what a decode step gathers at batch 1
    tied_embeddings: bool | None = None        # lm_head is the embedding table (read in full every step)
    kv_bytes_per_token: int | None = None      # KV-cache bytes per token of context, all layers, as run
    ran_as: str = ""                           # what ran, in words (e.g. "int4 CPUWNA16 kernel")
    threads: int | None = None                 # CPU threads the engine computed with, read back (None: GPU)


class Engine(Protocol):
    name: str

    # Module level, optional: ``placement(options) -> Placement`` (default in engines/__init__.py: device from
    # options["device"], cuda/auto -> cuda and 1 GPU, else cpu and none).

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]) -> Loaded:
        """Load the artifact with the variant's options; return what actually ran."""

    def encode(self, prompt: str) -> list[int]:
        """Prompt text -> input token ids (chat template applied when the tokenizer has one)."""

    def decode(self, token_ids: list[int]) -> str:
        ...

    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        """Greedy. Call on_token for each new token as it arrives; return the engine's output ids and the
        request's engine metrics."""

    # Optional, for the quality figures: teacher-forced scoring of a token sequence.
    # def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
    #     """For positions 1..n-1: log-prob of token_ids[i] given token_ids[:i], and the argmax prediction."""
    # Optional beside score, for KL divergence from the reference: the whole next-token distribution.
    # def log_probs(self, token_ids: list[int]) -> numpy.ndarray:
    #     """float32 (n-1, vocab): row i = log p(. | token_ids[:i+1]), normalized over the vocabulary."""

    def reset_peak_memory(self) -> None:
        ...

    def peak_memory(self) -> tuple[int, str] | None:
        """(bytes, what was measured) for device memory, e.g. GPU max allocated; None: the harness measures
        the process's peak RSS instead."""


# --- small pieces several adapters share -----------------------------------------------------------------

def check_method(artifact_dir: Path, manifest: dict[str, Any], engine: str, method: str | tuple[str, ...],
                 holds: str) -> None:
    """Refuse an artifact another method built (``method``: one method or several that write the same format).
    The config already pairs formats with engines (ACCEPTS); this catches a direct ``load`` (tools, tests) with
    a clear message instead of a library error deep inside."""
    methods = (method,) if isinstance(method, str) else tuple(method)
    found = manifest.get("method")
    if found is not None and found not in methods:
        raise ValueError(f"{artifact_dir} was built by method {found!r}; the {engine} engine loads artifacts of "
                         f"method {' or '.join(methods)} ({holds})")


def device_missing(asked: str, here: str) -> RuntimeError:
    """The error for a variant this machine or build cannot run as asked (never a fallback, which would
    measure something else): "variant asks for <asked> but <here>"."""
    return RuntimeError(f"variant asks for {asked} but {here}")


class HostPeakMemory:
    """The memory half for adapters whose library reports no allocator peak: ``peak_memory`` returns None,
    so the harness measures the process's peak RSS instead."""

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory(self) -> tuple[int, str] | None:
        return None


def score_from_log_probs(log_probs, token_ids: list[int]) -> tuple[list[float], list[int]]:
    """``score``'s answer from a ``log_probs`` matrix: per position 1..n-1 the actual token's log-prob and the
    argmax prediction."""
    import numpy as np

    targets = np.asarray(token_ids[1:], dtype=np.int64)
    actual = log_probs[np.arange(len(targets)), targets]
    return actual.astype(float).tolist(), log_probs.argmax(axis=-1).astype(int).tolist()
