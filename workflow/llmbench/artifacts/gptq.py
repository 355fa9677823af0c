"""GPTQ weight-only quantization with llm-compressor (``oneshot`` + ``GPTQModifier``).

Params (defaults in brackets): bits 4|8 [4], group_size [64] (must divide every quantized layer's input
size: the embedded model's hidden size 576 rules out 128), sym [true], num_samples [16] and seq_len [256]
(calibration: that many consecutive token blocks of llmbench.analysis.corpus), dtype float32|bfloat16 [float32],
ignore [["lm_head"]], damp (GPTQ dampening fraction) [0.01], block_size [128],
actorder static|group|weight|null [static]. Output: a compressed-tensors checkpoint (pack-quantized) that
transformers (with compressed-tensors installed) and vLLM load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.artifacts import _quant, refuse_synthetic

ENV = "quant"

PARAMS_SPEC: dict[str, tuple[Any, Any]] = {
    **_quant.COMMON_PARAMS,
    "damp": ((float, int), 0.01),
    "block_size": (int, 128),
    "actorder": (("static", "group", "weight", None), "static"),
}
# option -> allowed values or type, as engines' OPTIONS (for a config check before any job)
PARAMS = {k: v[0] for k, v in PARAMS_SPEC.items()}


def params_problems(params: dict[str, Any]) -> list[str]:
    """For a config check before any job: every bad param with what is allowed ([] if fine)."""
    return _quant.params_problems("gptq", params, PARAMS_SPEC)


def check(params: dict[str, Any]) -> dict[str, Any]:
    """Params with defaults filled in; ValueError naming every bad param."""
    return _quant.check_params("gptq", params, PARAMS_SPEC)


def _recipe(p: dict[str, Any]):
    from llmcompressor.modifiers.gptq import GPTQModifier

    return GPTQModifier(config_groups=_quant.config_groups(p), ignore=list(p["ignore"]),
                        dampening_frac=float(p["damp"]), block_size=p["block_size"], actorder=p["actorder"])


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = check(params)
    refuse_synthetic("gptq", model_manifest, "they are calibrated and quantized")
    return _quant.run("gptq", model_dir, p, out_dir, _recipe,
                      {"gptq": {"dampening_frac": p["damp"], "block_size": p["block_size"],
                                "actorder": p["actorder"]}})
