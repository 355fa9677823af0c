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


def constants(xml: Path) -> tuple[dict[str, tuple[str, int, int]], dict[str, list[str]], dict[str, str]]:
    """From the IR's XML, no OpenVINO needed: ({Const name: (layer id, offset, bytes in the .bin)}, {layer id:
    ids of the layers it feeds}, {layer id: layer type})."""
    import xml.etree.ElementTree as ET

    root = ET.parse(xml).getroot()
    consts, types = {}, {}
    for layer in root.iter("layer"):
        types[layer.get("id")] = layer.get("type")
        if layer.get("type") == "Const":
            data = layer.find("data")
            consts[layer.get("name")] = (layer.get("id"), int(data.get("offset")), int(data.get("size")))
    feeds: dict[str, list[str]] = {}
    for edge in root.iter("edge"):
        feeds.setdefault(edge.get("from-layer"), []).append(edge.get("to-layer"))
    return consts, feeds, types


def weight_facts(xml: Path) -> dict[str, Any]:
    """The IR's constant bytes (each .bin range once: the weights as stored, which the CPU plugin runs from,
    decompressing per use), the input embedding table with its scale and zero point, and whether a MatMul
    reads that table too (a tied lm_head: the export shares the constant)."""
    consts, feeds, types = constants(xml)
    total = sum({offset: size for _, offset, size in consts.values()}.values())
    emb = next(n for n in consts if n.endswith("embed_tokens.weight"))
    emb_bytes = sum(size for n, (_, _, size) in consts.items() if n == emb or n.startswith(emb + "/"))
    seen, todo, tied = set(), [(consts[emb][0], 0)], False
    while todo and not tied:
        node, hops = todo.pop()
        for nxt in feeds.get(node, []):
            tied |= types.get(nxt) == "MatMul"
            if nxt not in seen and hops < 8 and types.get(nxt) != "Gather":
                seen.add(nxt)
                todo.append((nxt, hops + 1))
    return {"weight_bytes": total, "input_embedding_bytes": emb_bytes, "embedding_name": emb, "tied": tied}
