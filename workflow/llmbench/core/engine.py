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

import abc

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


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
    # record the weights as run. core/roofline.decode_bytes turns these facts into bytes per decode step.
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


# The hooks an engine module may define at module level (the registry checks a module against this table when
# it loads it: a name one letter off a hook, or a hook in the wrong case, is an error, not a silent default).
MODULE_HOOKS = {
    "ADAPTER": "the in-process adapter class (a subclass of Engine); none: a serving-only engine",
    "ENV": "the env file (envs/<ENV>.yaml) its jobs run in; default: the engine's name",
    "ENV_BY_DEVICE": "device option -> env file (vLLM: cpu -> vllm-cpu, cuda -> vllm)",
    "env_for": "env_for(options) -> env file name, from the resolved options (HF: bitsandbytes -> hf-bnb)",
    "ACCEPTS": "the artifact formats it loads (the builders' FORMAT)",
    "OPTIONS": "name -> Option: every option, declared once (docs/options.md is generated from them)",
    "CHECKS": "cross-field rules: functions of the resolved options, each returning a problem text or None",
    "placement": "placement(options) -> Placement; default: options['device'] cuda/auto -> 1 GPU, else the CPU",
    "launcher": "launcher(options) -> interpreter arguments a benchmark job runs under before `-m llmbench` (HF "
                "tensor parallel: torch.distributed.run --standalone --nproc-per-node N); default: none",
    "server": "server(artifact_dir, manifest, options, host, port) -> ServerCommand: it serves by a launched server",
    "request_options": "request_options(n, end_ids) -> the request fields for exactly n new tokens",
    "tokenizer_dir": "tokenizer_dir(artifact_dir, manifest) -> the directory of the HF tokenizer the client uses",
    "endpoint": "endpoint(options) -> RemoteEndpoint: a server someone else runs (instead of server)",
    "launcher_problem": "launcher_problem(options) -> why the server cannot start here, or None",
    "CONTRACT": "the engine contract test's cases (ContractCase, tests/test_engine_contract.py); () for none",
}
# The same for an artifact method's module.
METHOD_HOOKS = {
    "build": "build(model_dir, model_manifest, params, out_dir) -> manifest fields",
    "ENV": "the env file its builds run in; default: the method's name",
    "FORMAT": "the artifact format it writes (matched against the engines' ACCEPTS)",
    "PARAMS": "name -> Option: every parameter, declared once",
    "CHECKS": "cross-field rules over the resolved params",
}


def misspelt_hooks(names, hooks, where: str) -> list[str]:
    """A problem per public name that is not a hook but nearly one (a letter off, or another case): a hook
    misspelt is otherwise never called, and the engine silently runs with the default."""
    import difflib

    out = []
    lower = {h.lower(): h for h in hooks}
    for name in names:
        if name in hooks or name.startswith("_"):
            continue
        near = lower.get(name.lower()) or next(iter(difflib.get_close_matches(name, hooks, n=1, cutoff=0.85)), None)
        if near:
            out.append(f"{where}{name} is not a hook: did you mean {near}? (hooks: core/engine.py)")
    return out


class Engine(abc.ABC):
    """The contract of an in-process adapter (``ADAPTER``): the abstract methods are required, the hooks set
    to None here are optional (an adapter defines the ones it has; ``has_hook`` says whether it did). A subclass
    may define no other public method: a misspelt hook (``log_prob``) is a TypeError when its module is imported,
    never a hook silently missing. Helpers are private (``_name``). Put Engine last among the bases, so that a
    mixin's hook (HFTokenizerMixin.tokenize_plain) is found before the None declared here.

    Module level, optional: see MODULE_HOOKS."""

    name: str = ""

    @abc.abstractmethod
    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]) -> Loaded:
        """Load the artifact with the variant's options; return what actually ran."""

    @abc.abstractmethod
    def encode(self, prompt: str) -> list[int]:
        """Prompt text -> input token ids (chat template applied when the tokenizer has one)."""

    @abc.abstractmethod
    def decode(self, token_ids: list[int]) -> str:
        ...

    @abc.abstractmethod
    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        """Greedy. Call on_token for each new token as it arrives; return the engine's output ids and the
        request's engine metrics."""

    @abc.abstractmethod
    def reset_peak_memory(self) -> None:
        ...

    @abc.abstractmethod
    def peak_memory(self) -> tuple[int, str] | None:
        """(bytes, what was measured) for device memory, e.g. GPU max allocated; None: the harness measures
        the process's peak RSS instead."""

    # Optional hooks (None: the engine has none).
    # score(token_ids) -> (log-probs, argmax): for positions 1..n-1, log-prob of token_ids[i] given token_ids[:i]
    # and the argmax prediction (teacher forced): the quality figures.
    score: Callable[[list[int]], tuple[list[float], list[int]]] | None = None
    # log_probs(token_ids) -> float32 (n-1, vocab) numpy array, row i = log p(. | token_ids[:i+1]): KL divergence
    log_probs: Callable[[list[int]], Any] | None = None
    # tokenize_plain(text) -> ids of plain text, no template or specials (with score: perplexity on plain text)
    tokenize_plain: Callable[[str], list[int]] | None = None
    # count_tokens(text) -> the re-tokenized count of an output (informational)
    count_tokens: Callable[[str], int] | None = None
    # close() -> stop what the engine started (vLLM: its engine-core and worker processes)
    close: Callable[[], None] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declared = {n for n in vars(Engine) if not n.startswith("_")}
        names = {n for klass in cls.__mro__ if klass not in (Engine, object) for n, v in vars(klass).items()
                 if callable(v) or isinstance(v, (property, staticmethod, classmethod))}  # state may be public
        stray = sorted(n for n in names if not n.startswith("_") and n not in declared)
        if stray:
            raise TypeError(f"engine adapter {cls.__module__}.{cls.__qualname__}: " + "; ".join(
                misspelt_hooks(stray, declared, "") or [f"{', '.join(stray)} are not hooks of the engine contract "
                                                         "(core/engine.py Engine): make helpers private (_name)"]))


def has_hook(engine, name: str) -> bool:
    """The adapter (class or instance) defines the optional hook ``name`` (Engine declares it as None)."""
    return getattr(engine, name, None) is not None


@dataclass
class ContractArtifact:
    """The artifact a contract case loads: ``method`` with ``params`` (None: the model directory itself)."""

    method: str | None
    params: dict[str, Any] = field(default_factory=dict)


REFERENCE = ContractArtifact(None)


@dataclass
class ContractFP32:
    """An fp32 artifact and the option sets under which the engine must give HF fp32's greedy tokens, token
    for token; ``runtime``: what the engine must read back to show it really computed in fp32;
    ``logprob_atol``: how close its teacher-forced log-probs are to HF's (None: only the argmax is compared)."""

    artifact: ContractArtifact
    options: list[dict[str, Any]]
    runtime: dict[str, Any] = field(default_factory=dict)
    logprob_atol: float | None = 2e-3


@dataclass
class ContractCase:
    """One case of the engine contract test (tests/test_engine_contract.py), declared by the engine module in
    ``CONTRACT``: the test discovers engines from the registry, so a new engine adds its cases, not a line in
    the test. ``library``: the module the case needs (it runs where that imports, and in the engine's env);
    ``bytes_per_param`` / ``kv_element_bytes``: as run with ``options``, for the weight-bytes and KV check."""

    library: str
    artifact: ContractArtifact
    options: dict[str, Any]
    fp32: ContractFP32 | None = None  # None: no fp32 path, or one never verified to match HF
    bytes_per_param: float | None = None
    kv_element_bytes: float | None = None
    name: str = ""  # the test id where one engine has two cases (default: the engine's name)


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
