"""OpenVINO IR: what the IR itself says about its weights (NNCF's compression record, constant types), which the
builder checks and records in the manifest and the engine reports in its runtime record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def ir_facts(xml: Path) -> dict[str, Any]:
    """What the IR itself says: NNCF's weight-compression record (rt_info) and the element types of the weight
    constants (count and elements per type), read with OpenVINO (weights memory-mapped, nothing compiled).
    OpenVINO is imported only when this is called."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    compression = None
    if model.has_rt_info(["nncf", "weight_compression"]):
        raw = model.get_rt_info(["nncf", "weight_compression"]).value
        compression = {k: str(raw[k]) for k in sorted(raw) if k != "advanced_parameters"}
        adv = str(raw.get("advanced_parameters", ""))
        m = re.search(r"'group_size_fallback_mode': '(\w+)'", adv)
        if m:
            compression["group_size_fallback_mode"] = m.group(1)
    nncf_version = str(model.get_rt_info(["nncf", "version"]).value) if model.has_rt_info(["nncf", "version"]) else None
    types: dict[str, dict[str, int]] = {}
    for op in model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        n = 1
        for s in shape:
            n *= int(s)
        if n < 1024:  # scalars and small shape/index constants are not weights
            continue
        t = types.setdefault(op.get_output_element_type(0).get_type_name(), {"constants": 0, "elements": 0})
        t["constants"] += 1
        t["elements"] += n
    return {"nncf_weight_compression": compression, "nncf_version": nncf_version,
            "weight_constants_by_type": dict(sorted(types.items()))}


def recorded_ir_facts(manifest: dict[str, Any], xml: Path) -> dict[str, Any]:
    """The weight facts the openvino builder recorded (``compression.applied``, ``weight_constants_by_type``;
    the manifest's hashes tie them to this very IR), else read from the IR for a manifest without them."""
    if "weight_constants_by_type" in manifest and "applied" in (manifest.get("compression") or {}):
        return {"nncf_weight_compression": manifest["compression"]["applied"],
                "weight_constants_by_type": manifest["weight_constants_by_type"]}
    return ir_facts(xml)
