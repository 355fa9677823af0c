"""AWQ weight-only quantization with llm-compressor (``oneshot`` + ``AWQModifier`` + ``QuantizationModifier``).

Params: ``PARAMS`` below (docs/options.md); ``sym`` defaults to false, AWQ's usual asymmetric W4A16_ASYM.

On a machine without an accelerator llm-compressor 0.14's AWQ fails in ``IntermediatesCache.pin_memory``;
the builder then makes that a no-op (only there) and records it in the manifest (``cpu_workarounds``).
AWQ's grid search is slow on CPU: the default calibration set is small (16 x 256 tokens) so CI finishes
in minutes; the manifest records num_samples x seq_len, raise them for a better artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.artifacts import _quant, refuse_synthetic
from llmbench.core.options import Option, at_least

ENV = "quant"

FORMAT = _quant.FORMAT
PARAMS = {
    **_quant.PARAMS,
    "sym": Option(bool, False, "symmetric quantization (no zero points); false: AWQ's usual W4A16_ASYM"),
    "n_grid": Option(int, 20, "scale grid points per layer (fewer is faster)", check=at_least(1)),
    "duo_scaling": Option((bool, str), True, "AWQ duo scaling", choices=(True, False, "both")),
}


def _recipe(p: dict[str, Any]):
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier

    return [AWQModifier(n_grid=p["n_grid"], duo_scaling=p["duo_scaling"]),
            QuantizationModifier(config_groups=_quant.config_groups(p), ignore=list(p["ignore"]))]


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = params
    refuse_synthetic("awq", model_manifest, "they are calibrated and quantized")
    return _quant.run("awq", model_dir, p, out_dir, _recipe,
                      {"awq": {"n_grid": p["n_grid"], "duo_scaling": p["duo_scaling"]}})
