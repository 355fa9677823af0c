"""The fetched model in a chosen dtype: the baseline every other artifact is compared with.

When the model's weights were themselves dequantized (the embedded model ships as a Q4_1 GGUF), the
artifact's manifest repeats the model manifest's ``dequantized_from``: such a reference is a 4-bit model in
fp32 storage, not an unquantized one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmbench.formats import TOKENIZER_FILES, copy_tokenizer_files
from llmbench.core.options import Option
from llmbench.provenance import versions

ENV = "hf"
FORMAT = "hf"  # a transformers model directory (safetensors + config + tokenizer)
PARAMS = {"dtype": Option(str, "float32", "dtype the weights are saved in", choices=("float32", "float16", "bfloat16"))}


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    dtype = params["dtype"]
    libs = versions("torch", "transformers", "safetensors")
    synthetic = model_manifest.get("synthetic")
    if synthetic and not synthetic.get("materialized"):
        # Random weights are drawn at load time from the seed; the artifact is the shape, seed and dtype.
        for name in ["config.json", "synthetic.json", *TOKENIZER_FILES]:
            if (model_dir / name).exists():
                shutil.copy(model_dir / name, out_dir / name)
        return {"library": "llmbench (synthetic: weights drawn at load)", "library_versions": libs}

    import torch
    from transformers import AutoModelForCausalLM

    print(f"loading {model_dir} and saving it as {dtype} ...", flush=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    model.save_pretrained(out_dir)
    tokenizer = copy_tokenizer_files(model_dir, out_dir)   # as they were: never re-saved through a class
    origin = {"dequantized_from": model_manifest["dequantized_from"]} if model_manifest.get("dequantized_from") else {}
    return {"library": "transformers", "library_versions": libs, "dtype": dtype, "tokenizer_files_sha256": tokenizer,
            **origin}
