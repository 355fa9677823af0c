"""AWQ weight-only quantization with llm-compressor (``oneshot`` + ``AWQModifier`` + ``QuantizationModifier``).

Params (defaults in brackets): bits 4|8 [4], group_size [64] (must divide every quantized layer's input
size: the embedded model's hidden size 576 rules out 128), sym [false: AWQ's usual asymmetric W4A16_ASYM],
num_samples [16] and seq_len [256] (calibration: that many consecutive token blocks of llmbench.analysis.corpus),
dtype float32|bfloat16 [float32], ignore [["lm_head"]], n_grid (scale grid points per layer; fewer is
faster) [20], duo_scaling true|false|"both" [true].

On a machine without an accelerator llm-compressor 0.14's AWQ fails in ``IntermediatesCache.pin_memory``;
the builder then makes that a no-op (only there) and records it in the manifest (``cpu_workarounds``).
AWQ's grid search is slow on CPU: the default calibration set is small (16 x 256 tokens) so CI finishes
in minutes; the manifest records num_samples x seq_len, raise them for a better artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.artifacts import _quant, refuse_synthetic

ENV = "quant"

PARAMS_SPEC: dict[str, tuple[Any, Any]] = {
    **_quant.COMMON_PARAMS,
    "sym": (bool, False),
    "n_grid": (int, 20),
    "duo_scaling": ((True, False, "both"), True),
}
PARAMS = {k: v[0] for k, v in PARAMS_SPEC.items()}


def params_problems(params: dict[str, Any]) -> list[str]:
    """For a config check before any job: every bad param with what is allowed ([] if fine)."""
    return _quant.params_problems("awq", params, PARAMS_SPEC)


def check(params: dict[str, Any]) -> dict[str, Any]:
    """Params with defaults filled in; ValueError naming every bad param."""
    return _quant.check_params("awq", params, PARAMS_SPEC)


def _recipe(p: dict[str, Any]):
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier

    return [AWQModifier(n_grid=p["n_grid"], duo_scaling=p["duo_scaling"]),
            QuantizationModifier(config_groups=_quant.config_groups(p), ignore=list(p["ignore"]))]


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = check(params)
    refuse_synthetic("awq", model_manifest, "they are calibrated and quantized")
    return _quant.run("awq", model_dir, p, out_dir, _recipe,
                      {"awq": {"n_grid": p["n_grid"], "duo_scaling": p["duo_scaling"]}})
