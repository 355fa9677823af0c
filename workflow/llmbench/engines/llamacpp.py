"""llama.cpp through llama-cpp-python: a GGUF artifact (method ``gguf``), greedy, one token at a time.

Options: ``OPTIONS`` below (docs/options.md). ``n_threads_batch`` null means n_threads here, not
llama-cpp-python's own default (cpu_count), so one setting controls both phases. A non-zero ``n_gpu_layers``
claims one GPU (placement) and, on a build without a GPU backend, fails the job instead of silently running
on the CPU.

Generation: a llama.cpp sampler chain of a logit bias of -inf on the end tokens (generation_config.json's
eos_token_id, the ones HF ``generate`` masks under ``min_new_tokens``) and the greedy sampler; each step samples
from the last logits, hands the token to on_token and decodes it (``Llama.eval``), exactly ``max_new_tokens``
times, so EOS neither ends generation early nor is emitted (as every other engine masks it). The ids returned
are read back from llama.cpp's context (``Llama.input_ids``), independently of the callback. ``reset()`` before
every request: llama-cpp-python otherwise reuses the KV cache of a matching prompt prefix (a repeated prompt
would skip its prefill and TTFT would be meaningless).

Tokenization: the HF tokenizer copied into the artifact (``tokenizer/``) with its chat template, exactly as the
hf engine does, so both engines get identical input ids (and the same decode). llama.cpp's own tokenizer is
never called: for the embedded SmolLM2 the converter writes an SPM-type ("llama") vocab (its tokenizer.json,
rebuilt by transformers from a GGUF, is byte-level BPE with byte_fallback), and llama.cpp's SPM tokenizer
aborts the whole process on it (std::out_of_range, uncatchable from Python). Generation only needs token ids.
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.core.engine import (ContractArtifact, ContractCase, ContractFP32, Engine, Generation, HostPeakMemory,
                                  Loaded, Placement, check_method, device_missing)
from llmbench.core.options import Option, at_least

import ctypes
import re
import os
from pathlib import Path
from typing import Any, Callable

# llama-cpp-python release -> the llama.cpp commit it vendors (its CHANGELOG: "update llama.cpp to ...@<sha>").
# The gguf builder reads this from the sdist; here it only labels the engine when the artifact was built
# with another version.
LLAMA_CPP_COMMITS = {"0.3.36": "0c1e57098"}
FLASH_ATTN_TYPES = {-1: "auto", 0: "disabled", 1: "enabled"}
LOAD_MODES = {-1: "auto", 0: "none", 1: "mmap", 2: "mlock", 3: "mmap+mlock", 4: "direct_io"}


ACCEPTS = ("gguf",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
OPTIONS = {
    "n_threads": Option((int, None), None, "threads for decoding (null: llama-cpp-python's default, "
                        "cpu_count // 2)", check=at_least(1)),
    "n_threads_batch": Option((int, None), None, "threads for prompt processing (null: same as n_threads)",
                              check=at_least(1)),
    "n_ctx": Option(int, 2048, "context size in tokens; prompt + new tokens must fit", check=at_least(16)),
    "n_gpu_layers": Option(int, 0, "layers offloaded to a GPU: 0 (CPU), a layer count, or -1 (all layers)",
                           check=at_least(-1)),
    "flash_attn": Option(bool, False, "llama-cpp-python maps false to disabled, true to enabled"),
}


def placement(options: dict[str, Any]) -> Placement:
    """A variant that offloads layers runs on (and claims) one GPU; the default (n_gpu_layers 0) the CPU."""
    threads = options.get("n_threads")
    if options["n_gpu_layers"] != 0:
        return Placement(device="cuda", gpus=1, cpu_threads=threads)
    return Placement(device="cpu", gpus=0, cpu_threads=threads)


def _llama_kwargs(model_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """``llama_cpp.Llama`` keyword arguments from resolved options (n_threads_batch null: n_threads). Pure."""
    return {
        "model_path": model_path,
        "n_ctx": options["n_ctx"],
        "n_threads": options["n_threads"],
        "n_threads_batch": options["n_threads_batch"] or options["n_threads"],
        "n_gpu_layers": options["n_gpu_layers"],
        "flash_attn": options["flash_attn"],
        "seed": 0,
        "verbose": False,
    }


def _with_stderr_captured(fn: Callable[[], Any]) -> tuple[Any, str]:
    """(fn(), what was written to file descriptor 2 meanwhile): llama.cpp logs from C, below sys.stderr. The
    text is written on to stderr afterwards, so the job's log keeps it."""
    import sys
    import tempfile

    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    sys.stderr.write(text)
    return result, text


def offload_facts(load_log: str) -> dict[str, Any]:
    """Where llama.cpp put the model, from its load log: ``offloaded 33/33 layers to GPU`` and ``using device
    CUDA0 (NVIDIA H100 80GB HBM3)``. None of a field means the log did not say it. Pure."""
    layers = re.search(r"offloaded (\d+)/(\d+) layers to GPU", load_log)
    dev = re.search(r"using device (\w+) \(([^)]*)\)", load_log)
    buffers = {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+) model buffer size =\s*([\d.]+) MiB", load_log)}
    return {"layers_offloaded": int(layers.group(1)) if layers else None,
            "layers_total": int(layers.group(2)) if layers else None,
            "device": dev.group(1) if dev else None, "device_name": dev.group(2) if dev else None,
            "model_buffer_mib": buffers or None}


def tokenizer_dir(artifact_dir: Path, manifest: dict[str, Any]) -> Path:
    from llmbench.formats.gguf import TOKENIZER_DIR

    return Path(artifact_dir) / manifest.get("tokenizer_dir", TOKENIZER_DIR)


def server(artifact_dir: Path, manifest: dict[str, Any], opts: dict[str, Any], host: str, port: int):
    """The launch of llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) on the GGUF
    file, with the engine's options (opts: resolved) and the artifact's HF tokenizer
    (``--hf_pretrained_model_name_or_path``), which tokenizes and detokenizes as the engine adapter does
    (llama.cpp's own tokenizer aborts the process on this GGUF's vocab, see above). Pure."""
    import sys

    from llmbench.core.server import ServerCommand

    if not manifest.get("gguf_file"):
        raise ValueError(f"{artifact_dir}: its manifest names no gguf_file; llama_cpp.server serves GGUF artifacts")
    kw = _llama_kwargs(str(Path(artifact_dir) / manifest["gguf_file"]), opts)
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", kw["model_path"], "--model_alias", "llmbench",
            "--host", host, "--port", str(port), "--n_ctx", str(kw["n_ctx"]),
            "--n_gpu_layers", str(kw["n_gpu_layers"]), "--flash_attn", str(kw["flash_attn"]),
            "--seed", "0", "--verbose", "False", "--interrupt_requests", "False",
            "--hf_pretrained_model_name_or_path", str(tokenizer_dir(artifact_dir, manifest))]
    if kw["n_threads"] is not None:
        argv += ["--n_threads", str(kw["n_threads"]), "--n_threads_batch", str(kw["n_threads_batch"])]
    return ServerCommand(argv=argv, model_name="llmbench", ready_path="/v1/models", metrics_path=None,
                         facts={"server": "llama_cpp.server", "n_threads": kw["n_threads"],
                                "n_threads_batch": kw["n_threads_batch"], "n_ctx": kw["n_ctx"],
                                "prefix_reuse": "llama_cpp.server keeps one context and reuses the longest "
                                                "common token prefix with the previous request (not configurable)",
                                "exact_length": "not enforced: llama-cpp-python 0.3.36 applies min_tokens and "
                                                "logit_bias through a custom sampler that has no effect (its "
                                                "source: 'This is probably broken'; observed: requests end at "
                                                "EOS anyway); a request that ends early fails its count check",
                                "concurrency": "llama_cpp.server runs one request at a time (others wait; "
                                               "--interrupt_requests False, else a new request cuts the "
                                               "running stream short)"})


def request_options(max_new_tokens: int, end_ids: list[int]) -> dict[str, Any]:
    """The request fields that ask llama_cpp.server for exactly ``max_new_tokens`` new tokens: ``min_tokens``
    (masks only llama.cpp's EOS) and a logit bias of -100 on every end token. Observed with llama-cpp-python
    0.3.36 (2026-12-03): the server ignores both (its custom-sampler path, see server()'s facts), so a request
    the model ends early comes back short, and the serving job counts it as failed."""
    return {"min_tokens": int(max_new_tokens), "logit_bias": {str(i): -100.0 for i in end_ids},
            "logit_bias_type": "input_ids"}


class LlamaCppEngine(HFTokenizerMixin, HostPeakMemory, Engine):  # HostPeakMemory: CPU, the harness measures peak RSS
    name = "llamacpp"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        import llama_cpp
        from transformers import AutoTokenizer

        from llmbench.formats.gguf import TOKENIZER_DIR

        artifact_dir = Path(artifact_dir)
        check_method(artifact_dir, manifest, "llamacpp", ("gguf", "gguf_shipped"), "one GGUF file + the HF tokenizer")
        if not manifest.get("gguf_file"):
            raise ValueError(f"{artifact_dir}: its manifest names no gguf_file; the llamacpp engine runs GGUF "
                             "artifacts (methods gguf, gguf_shipped)")
        self.model_path = str(artifact_dir / manifest["gguf_file"])
        n_gpu_layers = options["n_gpu_layers"]
        gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
        if n_gpu_layers != 0 and not gpu_offload:
            raise device_missing(f"n_gpu_layers={n_gpu_layers}", "this llama-cpp-python build has no GPU backend "
                                 "(llama_supports_gpu_offload() is false)")
        self.kwargs = _llama_kwargs(self.model_path, options)
        self.llama_cpp = llama_cpp
        if n_gpu_layers != 0:  # llama.cpp says in its load log which device took how many layers: keep it
            self.llm, load_log = _with_stderr_captured(
                lambda: llama_cpp.Llama(logits_all=False, **{**self.kwargs, "verbose": True}))
            self.offload = offload_facts(load_log)
        else:
            self.llm = llama_cpp.Llama(logits_all=False, **self.kwargs)
            self.offload = None
        self._scorer = None
        self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir / manifest.get("tokenizer_dir", TOKENIZER_DIR))
        self.vocab_size = self.llm.n_vocab()
        self.runtime = self._runtime(manifest, gpu_offload)
        return self._loaded(on_gpu=gpu_offload and n_gpu_layers != 0)

    def _runtime(self, manifest: dict[str, Any], gpu_offload: bool) -> dict[str, Any]:
        """What ran, read back from the llama.cpp context and model (quant type, threads, batch sizes, offload)."""
        from llmbench.formats.gguf import file_type_name

        llama_cpp, llm = self.llama_cpp, self.llm
        cp, mp, meta = llm.context_params, llm.model_params, llm.metadata
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(llm.model, desc, 256)
        return {
            "quant_type": file_type_name(meta.get("general.file_type")),
            "model_desc": desc.value.decode(errors="replace"),
            "model_size_bytes": int(llama_cpp.llama_model_size(llm.model)),
            "n_params": int(llama_cpp.llama_model_n_params(llm.model)),
            "n_threads": int(cp.n_threads),
            "n_threads_batch": int(cp.n_threads_batch),
            "n_ctx": int(llm.n_ctx()),
            "n_batch": int(cp.n_batch),
            "n_ubatch": int(cp.n_ubatch),
            "n_gpu_layers": int(mp.n_gpu_layers),
            "gpu_offload_supported": gpu_offload,
            "offload": self.offload,  # read from llama.cpp's load log (None: CPU run)
            "flash_attn": FLASH_ATTN_TYPES.get(int(cp.flash_attn_type), str(cp.flash_attn_type)),
            "load_mode": LOAD_MODES.get(getattr(mp, "load_mode", None), getattr(mp, "load_mode", None)),
            "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "sampler": "llama.cpp sampler chain: logit_bias (end tokens -inf) + greedy",
            "eos": "masked (logit bias -inf) for all max_new_tokens steps; decoding stops after exactly that many",
            "kv_prefix_reuse": False,
            "tokenizer": "hf (transformers AutoTokenizer from the artifact's tokenizer/, chat template applied)",
            "gguf_tokenizer_model": meta.get("tokenizer.ggml.model"),
            "llama_cpp_commit": LLAMA_CPP_COMMITS.get(llama_cpp.__version__),
            "artifact_built_with": (manifest.get("library_versions") or {}).get("llama-cpp-python"),
        }

    def _loaded(self, on_gpu: bool) -> Loaded:
        from llmbench.provenance import cpu_name, versions

        version = self.llama_cpp.__version__
        return Loaded(
            engine_version=version,
            device="gpu" if on_gpu else "cpu",
            device_name=((self.offload or {}).get("device_name") or "gpu (llama.cpp backend)") if on_gpu else cpu_name(),
            runtime=self.runtime,
            library_versions={**versions("llama-cpp-python", "transformers", "tokenizers", "numpy"),
                              "llama.cpp": LLAMA_CPP_COMMITS.get(version)},
            threads=self.runtime["n_threads"],
            **self._weight_facts(),
        )

    def _weight_facts(self) -> dict[str, Any]:
        """Loaded's weight fields from the GGUF's tensor table (formats/gguf.py): bytes per tensor as stored
        and run (llama.cpp computes on the quantized blocks), the KV cache at the context's K/V types, and the
        effective bits per weight (rows whose width the block size does not divide fall back to other types)."""
        from llmbench.formats import gguf as fmt

        table = fmt.tensors(self.model_path)
        total = sum(b for _, b, _, _ in table.values())
        kind, emb_bytes, _, rows = table[fmt.EMBEDDING]
        cp, n_params = self.llm.context_params, self.runtime["n_params"]
        types: dict[str, int] = {}
        for t, _, n, _ in table.values():
            types[t] = types.get(t, 0) + n
        mix = ", ".join(f"{t} {n / n_params:.0%}" for t, n in sorted(types.items(), key=lambda x: -x[1]))
        off = self.offload
        where = (f"; {off['layers_offloaded']}/{off['layers_total']} layers offloaded to {off.get('device') or 'GPU'}"
                 if off and off.get("layers_offloaded") is not None else "")
        return {
            "weight_bytes": total,
            "weight_bytes_method": "sum of the GGUF's tensor sizes (llama_model_size: "
                                   f"{self.runtime['model_size_bytes']})",
            "input_embedding_bytes": emb_bytes,
            "embedding_row_bytes": emb_bytes // rows,
            "tied_embeddings": fmt.OUTPUT not in table,  # llama.cpp then uses token_embd as the output matrix
            "kv_bytes_per_token": fmt.kv_bytes_per_token(self.llm.metadata, int(cp.type_k), int(cp.type_v)),
            "ran_as": f"GGUF {self.runtime['quant_type']}: {total * 8 / n_params:.2f} bits per weight effective "
                      f"(tensor bytes × 8 / parameters; elements by type: {mix}); KV cache "
                      f"{fmt.KV_TYPE_NAMES.get(int(cp.type_k), cp.type_k)}/{fmt.KV_TYPE_NAMES.get(int(cp.type_v), cp.type_v)}" + where,
        }

    # tokens: encode/decode/tokenize_plain/count_tokens come from HFTokenizerMixin (the HF tokenizer)

    # ------------------------------------------------------------------ generation
    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        """Greedy with the end tokens masked, one token per step: sample, hand it to ``on_token``, decode it
        into the context; the last token is decoded too (after its on_token, outside the timed span) so the
        context holds all N. The COUNT returned is llama.cpp's own: the positions its KV cache holds for the
        sequence (``llama_memory_seq_pos_max`` + 1) minus the prompt, so a token that was streamed but never
        decoded into the cache shows as a short count. The IDS are the context's tokens up to that count, i.e.
        the tokens this loop fed back: llama.cpp keeps no record of its samples apart from them, so comparing
        them with the streamed ids cannot fail (unlike CTranslate2's independent result); only the count can."""
        n_ctx = self.llm.n_ctx()
        if len(input_ids) + max_new_tokens > n_ctx:
            raise ValueError(f"prompt ({len(input_ids)}) + max_new_tokens ({max_new_tokens}) exceed n_ctx={n_ctx}; "
                             "raise the variant's n_ctx option")
        if max_new_tokens <= 0:
            return Generation([])
        llm, sampler = self.llm, self._greedy_sampler()
        llm.reset()  # full prefill every request: no KV reuse from the previous prompt
        llm.eval(list(input_ids))
        for _ in range(max_new_tokens):
            tok = int(sampler.sample(llm._ctx, -1))  # from the logits of the last decoded position
            on_token(tok)
            llm.eval([tok])
        held = self._kv_positions()
        return Generation([int(t) for t in llm.input_ids[len(input_ids):held]], {"kv_positions": held})

    def _kv_positions(self) -> int:
        """Positions llama.cpp's KV cache holds for sequence 0: its own count, not the adapter's token list."""
        lc = self.llama_cpp
        return int(lc.llama_memory_seq_pos_max(lc.llama_get_memory(self.llm._ctx.ctx), 0)) + 1

    def _greedy_sampler(self):
        """llama.cpp's sampler chain: logit bias -inf on the end tokens (EOS can never be sampled, as HF's
        min_new_tokens masks it), then greedy. Built once per engine."""
        if getattr(self, "_sampler", None) is None:
            from llama_cpp._internals import LlamaSampler

            sampler = LlamaSampler()
            sampler.add_logit_bias(self.vocab_size, {t: float("-inf") for t in self._end_token_ids()})
            sampler.add_greedy()
            self._sampler = sampler
        return self._sampler

    def _end_token_ids(self) -> list[int]:
        """The end tokens HF ``generate`` masks (the artifact tokenizer's generation_config.json eos_token_id),
        else llama.cpp's own EOS; recorded in the runtime as masked."""
        from llmbench.engines._eos import generation_config_eos

        ids = generation_config_eos(Path(self.tokenizer.name_or_path)) or [int(self.llm.token_eos())]
        self.runtime["end_token_ids_masked"] = ids
        return ids

    # ------------------------------------------------------------------ quality
    def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
        """Teacher-forced: for positions 1..n-1 the log-prob of token_ids[i] and the argmax prediction."""
        from llmbench.core.engine import score_from_log_probs

        if len(token_ids) < 2:
            return [], []
        return score_from_log_probs(self.log_probs(token_ids), token_ids)

    def log_probs(self, token_ids: list[int]):
        """Teacher forced: next-token log-probs (float32 numpy, positions 0..n-2 x vocab) from one batched eval
        with logits for every position (a second context with logits_all=True, sized to the sequence);
        log-softmax in float64."""
        import numpy as np

        n = len(token_ids)
        need = max(256, 1 << (n - 1).bit_length())
        if self._scorer is None or self._scorer.n_ctx() < n:
            if self._scorer is not None:
                self._scorer.close()
            kw = {**self.kwargs, "n_ctx": need, "n_batch": min(need, 512)}
            self._scorer = self.llama_cpp.Llama(logits_all=True, **kw)
        s = self._scorer
        s.reset()
        s.eval(list(token_ids))
        logits = np.asarray(s.scores[: n - 1, :], dtype=np.float64)
        mx = logits.max(axis=1, keepdims=True)
        lse = mx + np.log(np.exp(logits - mx).sum(axis=1, keepdims=True))
        return (logits - lse).astype(np.float32)


ADAPTER = LlamaCppEngine

CONTRACT = (ContractCase(
    "llama_cpp", ContractArtifact("gguf", {"type": "Q8_0"}), {"n_threads": 2, "n_ctx": 1024},
    # llama.cpp's F32 log-probs differ from HF's by up to 6e-3 (measured; its own summation order), while
    # the greedy tokens and the teacher-forced argmax agree everywhere
    ContractFP32(ContractArtifact("gguf", {"type": "F32"}), [{"n_threads": 2, "n_ctx": 1024}], {"quant_type": "F32"},
                 logprob_atol=None),
    bytes_per_param=34 / 32, kv_element_bytes=2),)  # Q8_0: 32 int8 + one f16 scale per block; f16 cache
