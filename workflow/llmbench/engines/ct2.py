"""CTranslate2 adapter: ``Generator.generate_batch`` with a step callback streams each token to the harness as it
is decoded; the ids returned are the final result's ``sequences_ids`` (CTranslate2's own output).

Options: ``OPTIONS`` below (docs/options.md).

Exactly ``max_new_tokens``: with ``include_prompt_in_result=False`` CTranslate2's
``max_length``/``min_length`` count new tokens only, and ``min_length`` masks the end tokens until it is reached,
so ``min_length = max_length = N`` gives N tokens. The masked end tokens are the ones HF ``generate`` masks
(``generation_config.json``'s ``eos_token_id``), so greedy outputs are comparable token for token.
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.engines._native_output import capture_fd
from llmbench.core.engine import (ContractArtifact, ContractCase, ContractFP32, Engine, Generation, HostPeakMemory,
                                  Loaded, Placement, check_method, device_missing)
from llmbench.core.options import Option, at_least

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

ENV = "ct2"

COMPUTE_TYPES = ("default", "int8", "int8_float32", "int8_float16", "float32", "float16", "bfloat16")
ACCEPTS = ("ct2",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
OPTIONS = {
    "device": Option(str, "cpu", "where CTranslate2 runs", choices=("cpu", "cuda")),
    "compute_type": Option(str, "default", "default: the type the weights were saved in, or the nearest the "
                           "device supports; CTranslate2 converts the weights at load when they differ",
                           choices=COMPUTE_TYPES),
    "intra_threads": Option((int, None), None, "OpenMP threads per generator (0 or null: CTranslate2's default, "
                            "OMP_NUM_THREADS or min(4, cores))", check=at_least(0)),
    "inter_threads": Option((int, None), 1, "parallel generators (replicas); batch-1 latency uses one "
                            "(null: 1)", check=at_least(1)),
}

# CTranslate2's load-time log lines worth keeping in the runtime record: what it picked on this machine.
_LOG_FACTS = {
    "cpu_isa": r"Selected ISA: (\S+)",
    "use_mkl": r"Use Intel MKL: (\S+)",
    "sgemm_backend": r"SGEMM backend: (.+)$",
    "gemm_s8_backend": r"GEMM_S8 backend: (.+)$",
    "model_binary_version": r"Binary version: (\S+)",
    "model_spec_revision": r"Model specification revision: (\S+)",
    "selected_compute_type": r"Selected compute type: (\S+)",
}


def placement(options: dict[str, Any]) -> Placement:
    if options.get("device", "cpu") == "cuda":
        return Placement(device="cuda", gpus=1)
    return Placement(device="cpu", gpus=0, cpu_threads=options.get("intra_threads") or None)


def _check_device(ctranslate2, device: str, compute_type: str) -> None:
    """Fail before loading when this machine cannot run the variant as asked (no silent CPU or type fallback)."""
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise device_missing("device=cuda", "CTranslate2 sees no CUDA device here "
                             "(its Linux wheel needs libcublas.so.12, i.e. CUDA 12)")
    supported = sorted(ctranslate2.get_supported_compute_types(device))
    if compute_type != "default" and compute_type not in supported:
        raise ValueError(f"compute_type {compute_type!r} is not supported by CTranslate2 on {device} here; "
                         f"supported: {', '.join(supported)} (or default)")


def _start_generator(ctranslate2, artifact_dir: Path, options: dict[str, Any]):
    """(the Generator, the facts its INFO log printed while loading: ISA, GEMM backends, compute type)."""
    previous_level = ctranslate2.get_log_level()
    ctranslate2.set_log_level(logging.INFO)  # CTranslate2 then logs the ISA, GEMM backends and compute type
    try:
        generator, log_text = capture_fd(2, lambda: ctranslate2.Generator(
            str(artifact_dir), device=options["device"], compute_type=options["compute_type"],
            intra_threads=options["intra_threads"] or 0, inter_threads=options["inter_threads"] or 1))
    finally:
        ctranslate2.set_log_level(previous_level)
    facts = {}
    for key, pattern in _LOG_FACTS.items():
        m = re.search(pattern, log_text, re.MULTILINE)
        if m:
            facts[key] = m.group(1).strip()
    return generator, facts


def _cpu_threads(intra: int) -> tuple[int, str]:
    """(threads per generator on the CPU, where that number comes from), as CTranslate2 picks it."""
    if intra:
        return intra, "intra_threads"
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    return min(4, os.cpu_count() or 4), "ctranslate2 default min(4, cores)"


def _weight_facts(model_bin: Path, compute_type: str) -> dict[str, Any]:
    """Loaded's weight fields from model.bin's variables (formats/ct2.py) at the compute type that ran:
    CTranslate2 reports no loaded sizes, so the saved tensors are converted to that type's sizes (a
    compute_type other than the saved one converts the weights at load); the settings and the header are
    not weights. The lm_head of a tied model is an alias of the embedding table in model.bin."""
    from llmbench.formats import ct2 as fmt

    variables, aliases = fmt.read(model_bin)
    sizes = fmt.bytes_as_run(variables, compute_type)
    emb = variables[fmt.EMBEDDING]
    saved = sorted({v.dtype for v in variables.values() if len(v.shape) == 2})
    weight, act = fmt.run_types(compute_type)
    converted = "" if saved == [weight] else f", weights saved as {'/'.join(saved)} and converted at load"
    return {
        "weight_bytes": sum(sizes.values()),
        "weight_bytes_method": f"model.bin tensors (rank >= 1) at compute type {compute_type}",
        "input_embedding_bytes": sizes[fmt.EMBEDDING],
        "embedding_row_bytes": sizes[fmt.EMBEDDING] // emb.shape[0],
        "tied_embeddings": aliases.get("decoder/projection/weight") == fmt.EMBEDDING,
        "kv_bytes_per_token": fmt.kv_bytes_per_token(variables, compute_type),
        "ran_as": f"CTranslate2 compute type {compute_type} ({weight} weights, {act} activations{converted})",
    }


class CT2Engine(HFTokenizerMixin, HostPeakMemory, Engine):  # HostPeakMemory: CTranslate2 has no allocator statistics
    name = "ct2"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        import ctranslate2

        self.ct2 = ctranslate2
        artifact_dir = Path(artifact_dir)
        check_method(artifact_dir, manifest, "ct2", "ct2", "CTranslate2 format")
        _check_device(ctranslate2, options["device"], options["compute_type"])
        self.generator, log_facts = _start_generator(ctranslate2, artifact_dir, options)
        self._load_tokens(artifact_dir)
        self.device = self.generator.device
        self.runtime = self._runtime(options, log_facts)
        return self._loaded(artifact_dir)

    def _load_tokens(self, artifact_dir: Path) -> None:
        """The HF tokenizer, the id -> token string table the Generator is fed, and the end tokens to mask."""
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
        # Token strings in, ids out: the model's vocabulary must be the tokenizer's, id for id.
        vocab = json.loads((artifact_dir / "vocabulary.json").read_text())
        if vocab != self.tokenizer.convert_ids_to_tokens(list(range(len(vocab)))):
            raise ValueError(f"{artifact_dir}/vocabulary.json does not match the tokenizer's ids; rebuild the artifact")
        self.id_to_token = vocab
        self.end_token = self._end_token_ids(artifact_dir)

    def _runtime(self, options: dict[str, Any], log_facts: dict[str, str]) -> dict[str, Any]:
        """What ran, read back from the Generator and CTranslate2's load log."""
        g = self.generator
        threads, source = _cpu_threads(options["intra_threads"] or 0)
        return {
            "compute_type": g.compute_type,
            "compute_type_requested": options["compute_type"],
            "device": g.device,
            "device_index": list(g.device_index),
            "num_generators": g.num_generators,
            "intra_threads": threads if g.device == "cpu" else None,
            "intra_threads_from": source if g.device == "cpu" else None,
            "end_token_ids_masked": self.end_token,
            "stop_rule": "min_length = max_length = max_new_tokens (new tokens only)",
            "ct2_env": {k: v for k, v in os.environ.items() if k.startswith("CT2_")},
            **log_facts,
        }

    def _loaded(self, artifact_dir: Path) -> Loaded:
        from llmbench.provenance import cpu_name, versions

        g = self.generator
        device = "cpu" if g.device == "cpu" else f"cuda:{g.device_index[0]}"
        return Loaded(
            engine_version=self.ct2.__version__,
            device=device,
            device_name=cpu_name() if device == "cpu" else device,
            runtime=self.runtime,
            library_versions=versions("ctranslate2", "transformers", "tokenizers", "numpy"),
            threads=self.runtime["intra_threads"],
            **_weight_facts(artifact_dir / "model.bin", g.compute_type),
        )

    @staticmethod
    def _end_token_ids(artifact_dir: Path) -> list[int] | None:
        """The end tokens HF ``generate`` masks under ``min_new_tokens`` (generation_config's eos_token_id);
        None: CTranslate2's own default (config.json's eos_token)."""
        path = artifact_dir / "generation_config.json"
        if not path.exists():
            return None
        eos = json.loads(path.read_text()).get("eos_token_id")
        if eos is None:
            return None
        return [int(e) for e in (eos if isinstance(eos, list) else [eos])]

    def generate(self, input_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None]) -> Generation:
        """``generate_batch`` with a step callback: the callback hands each token to ``on_token`` as CTranslate2
        decodes it (the same callback ``generate_tokens`` wraps, minus its queue and thread hop), and the ids
        returned are the library's own final result (``sequences_ids``), not a list built from the callback."""
        prompt = [self.id_to_token[i] for i in input_ids]
        failed: list[BaseException] = []

        def step(result) -> bool:  # runs in CTranslate2's worker thread, which holds the GIL for the call
            try:
                on_token(result.token_id)  # the step result is on the host: this token exists now
            except BaseException as e:  # an exception cannot cross the C++ boundary: stop, raise it below
                failed.append(e)
                return True
            return False  # False: go on decoding

        (result,) = self.generator.generate_batch(
            [prompt], max_length=max_new_tokens, min_length=max_new_tokens, sampling_topk=1, beam_size=1,
            end_token=self.end_token, include_prompt_in_result=False, callback=step)
        if failed:
            raise failed[0]
        return Generation([int(t) for t in result.sequences_ids[0]])

    def log_probs(self, token_ids: list[int]):
        """Teacher forced: next-token log-probs (float32 numpy, positions 0..n-2 x vocab) from one
        ``forward_batch`` with ``return_log_probs`` (the numbers ``score_batch`` gives for the actual tokens)."""
        import numpy as np

        ct2 = self.ct2
        lp = self.generator.forward_batch([list(token_ids)], return_log_probs=True)
        if lp.device != "cpu":
            lp = lp.to_device(ct2.Device.cpu)
        if lp.dtype != ct2.DataType.float32:
            lp = lp.to(ct2.DataType.float32)
        return np.array(lp, dtype=np.float32)[0, :-1]  # row i predicts token i+1

    def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
        """Teacher-forced: for positions 1..n-1, log p(token_ids[i] | token_ids[:i]) and the argmax prediction."""
        from llmbench.core.engine import score_from_log_probs

        if len(token_ids) < 2:
            return [], []
        return score_from_log_probs(self.log_probs(token_ids), token_ids)


ADAPTER = CT2Engine

CONTRACT = (ContractCase(
    "ctranslate2", ContractArtifact("ct2", {"quantization": "int8"}),
    {"device": "cpu", "compute_type": "int8", "intra_threads": 2},
    ContractFP32(ContractArtifact("ct2", {"quantization": "float32"}),
                 [{"device": "cpu", "compute_type": "float32", "intra_threads": 2}], {"compute_type": "float32"}),
    bytes_per_param=1, kv_element_bytes=4),)  # int8 weights, float32 activations and cache
