"""CTranslate2 adapter: ``Generator.generate_tokens`` streams each token to the harness as it is decoded.

Options: ``OPTIONS`` below (docs/options.md).

Exactly ``max_new_tokens``: with ``include_prompt_in_result=False`` (what ``generate_tokens`` uses) CTranslate2's
``max_length``/``min_length`` count new tokens only, and ``min_length`` masks the end tokens until it is reached,
so ``min_length = max_length = N`` gives N tokens. The masked end tokens are the ones HF ``generate`` masks
(``generation_config.json``'s ``eos_token_id``), so greedy outputs are comparable token for token.
"""

from __future__ import annotations

from llmbench.engines._hf_tokens import HFTokenizerMixin
from llmbench.engines._native_output import capture_fd
from llmbench.engines.base import Generation, Placement
from llmbench.planning.options import Option, at_least

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


class CT2Engine(HFTokenizerMixin):
    name = "ct2"

    def load(self, artifact_dir: Path, manifest: dict[str, Any], options: dict[str, Any]):
        import ctranslate2
        from transformers import AutoTokenizer

        from llmbench.engines.base import Loaded
        from llmbench.provenance import cpu_name, versions

        self.ct2 = ctranslate2
        artifact_dir = Path(artifact_dir)
        if manifest.get("method") not in (None, "ct2"):
            raise ValueError(f"{artifact_dir} was built by method {manifest.get('method')!r}; the ct2 engine loads "
                             "artifacts of method ct2 (CTranslate2 format)")
        device, compute_type = options["device"], options["compute_type"]
        if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
            raise RuntimeError("variant asks for device=cuda but CTranslate2 sees no CUDA device here "
                               "(its Linux wheel needs libcublas.so.12, i.e. CUDA 12)")
        supported = sorted(ctranslate2.get_supported_compute_types(device))
        if compute_type != "default" and compute_type not in supported:
            raise ValueError(f"compute_type {compute_type!r} is not supported by CTranslate2 on {device} here; "
                             f"supported: {', '.join(supported)} (or default)")
        intra = options["intra_threads"] or 0
        inter = options["inter_threads"] or 1

        previous_level = ctranslate2.get_log_level()
        ctranslate2.set_log_level(logging.INFO)  # CTranslate2 then logs the ISA, GEMM backends and compute type
        try:
            self.generator, log_text = capture_fd(2, lambda: ctranslate2.Generator(
                str(artifact_dir), device=device, compute_type=compute_type,
                intra_threads=intra, inter_threads=inter))
        finally:
            ctranslate2.set_log_level(previous_level)
        facts = {}
        for key, pattern in _LOG_FACTS.items():
            m = re.search(pattern, log_text, re.MULTILINE)
            if m:
                facts[key] = m.group(1).strip()

        self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
        # Token strings in, ids out: the model's vocabulary must be the tokenizer's, id for id.
        vocab = json.loads((artifact_dir / "vocabulary.json").read_text())
        if vocab != self.tokenizer.convert_ids_to_tokens(list(range(len(vocab)))):
            raise ValueError(f"{artifact_dir}/vocabulary.json does not match the tokenizer's ids; rebuild the artifact")
        self.id_to_token = vocab
        self.end_token = self._end_token_ids(artifact_dir)

        g = self.generator
        if intra:
            threads, source = intra, "intra_threads"
        elif os.environ.get("OMP_NUM_THREADS", "").isdigit():
            threads, source = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
        else:
            threads, source = min(4, os.cpu_count() or 4), "ctranslate2 default min(4, cores)"
        self.device = g.device
        self.runtime = {
            "compute_type": g.compute_type,
            "compute_type_requested": compute_type,
            "device": g.device,
            "device_index": list(g.device_index),
            "num_generators": g.num_generators,
            "intra_threads": threads if g.device == "cpu" else None,
            "intra_threads_from": source if g.device == "cpu" else None,
            "end_token_ids_masked": self.end_token,
            "stop_rule": "min_length = max_length = max_new_tokens (new tokens only)",
            "ct2_env": {k: v for k, v in os.environ.items() if k.startswith("CT2_")},
            **facts,
        }
        name = cpu_name() if g.device == "cpu" else f"cuda:{g.device_index[0]}"
        return Loaded(
            engine_version=ctranslate2.__version__,
            device=g.device if g.device == "cpu" else f"cuda:{g.device_index[0]}",
            device_name=name,
            # weight_bytes: model.bin as written by the converter (CTranslate2 reports no loaded sizes; a
            # compute_type that differs from the saved weight type converts them at load, not counted here)
            weight_bytes=(artifact_dir / "model.bin").stat().st_size,
            runtime=self.runtime,
            library_versions=versions("ctranslate2", "transformers", "tokenizers", "numpy"),
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
        prompt = [self.id_to_token[i] for i in input_ids]
        out: list[int] = []
        for step in self.generator.generate_tokens(
                prompt, max_length=max_new_tokens, min_length=max_new_tokens, sampling_topk=1,
                end_token=self.end_token):
            on_token(step.token_id)  # the step result is on the host: this token exists now
            out.append(step.token_id)
        return Generation(out)

    def score(self, token_ids: list[int]) -> tuple[list[float], list[int]]:
        """Teacher-forced: for positions 1..n-1, log p(token_ids[i] | token_ids[:i]) and the argmax prediction.
        One ``forward_batch`` with log-probs (the same numbers ``score_batch`` gives for the actual tokens)."""
        import numpy as np

        ct2 = self.ct2
        if len(token_ids) < 2:
            return [], []
        lp = self.generator.forward_batch([list(token_ids)], return_log_probs=True)
        if lp.device != "cpu":
            lp = lp.to_device(ct2.Device.cpu)
        if lp.dtype != ct2.DataType.float32:
            lp = lp.to(ct2.DataType.float32)
        lp = np.asarray(lp)[0, :-1]  # row i predicts token i+1
        ids = np.asarray(token_ids[1:])
        actual = lp[np.arange(len(ids)), ids]
        return actual.astype(float).tolist(), lp.argmax(-1).astype(int).tolist()

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory(self) -> tuple[int, str] | None:
        return None  # CTranslate2 exposes no allocator statistics; the harness measures process RSS


ADAPTER = CT2Engine
