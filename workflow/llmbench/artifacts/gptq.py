"""GPTQ weight-only quantization with llm-compressor (``oneshot`` + ``GPTQModifier``).

Params: ``PARAMS`` below (docs/options.md). Output: a compressed-tensors checkpoint (pack-quantized) that
transformers (with compressed-tensors installed) and vLLM load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.artifacts import _quant, refuse_synthetic
from llmbench.core.options import Option, at_least, in_range

ENV = "quant"

FORMAT = _quant.FORMAT
PARAMS = {
    **_quant.PARAMS,
    "damp": Option(float, 0.01, "GPTQ dampening fraction", check=in_range(0, 1, low_open=True, high_open=True)),
    "block_size": Option(int, 128, "GPTQ block size (columns quantized together)", check=at_least(1)),
    "actorder": Option((str, None), "static", "GPTQ activation ordering", choices=("static", "group", "weight", None)),
}


def _recipe(p: dict[str, Any]):
    from llmcompressor.modifiers.gptq import GPTQModifier

    return GPTQModifier(config_groups=_quant.config_groups(p), ignore=list(p["ignore"]),
                        dampening_frac=float(p["damp"]), block_size=p["block_size"], actorder=p["actorder"])


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = params
    refuse_synthetic("gptq", model_manifest, "they are calibrated and quantized")
    return _quant.run("gptq", model_dir, p, out_dir, _recipe,
                      {"gptq": {"dampening_frac": p["damp"], "block_size": p["block_size"],
                                "actorder": p["actorder"]}})
