"""Round-to-nearest 4-bit weights in the GPTQ checkpoint layout (W4A16): no calibration, no error correction.

Each Linear weight of the decoder layers (q/k/v/o, gate/up/down projections) is cut into groups of
``group_size`` input columns; a group's scale is ``2·max|w| / 15`` and its weights are rounded to the nearest of
the 16 levels ``(q − 8)·scale`` (symmetric, as GPTQ's ``sym: true``). The file layout is AutoGPTQ's v1 format that
vLLM's ``gptq`` / ``gptq_marlin`` loaders read: ``qweight`` int32 [in/8, out] (8 nibbles along the input),
``qzeros`` int32 [groups, out/8] (the zero point 8 stored as 7, the v1 convention), ``scales`` fp16 [groups, out],
``g_idx`` int32 [in]; config.json gets the matching ``quantization_config`` (``desc_act: false``), so vLLM picks
its kernel (Marlin on Ampere and newer GPUs) by itself and the row's ``ran as`` says which.

What it is for: speed. On a model's real weights RTN loses more quality than GPTQ or AWQ (the quality columns
show by how much); on a synthetic model whose random weights were saved (``materialize``) it is an honest
4-bit speed artifact, labelled synthetic like its model. Embeddings, norms and lm_head stay as stored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from llmbench.artifacts import refuse_synthetic
from llmbench.formats import TOKENIZER_FILES
from llmbench.core.options import Option, at_least
from llmbench.provenance import versions

ENV = "hf"
FORMAT = "hf"  # a transformers model directory with a GPTQ quantization_config (vLLM loads it)
PARAMS = {
    "group_size": Option(int, 128, "input columns per scale (must divide every quantized layer's input size; "
                         "vLLM's Marlin kernel needs 128 or -1 on GPU)", check=at_least(8)),
}
BITS = 4
QUANTIZED = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def quantize_weight(w, group_size: int) -> dict[str, Any]:
    """One Linear weight [out, in] -> the GPTQ v1 tensors (qweight, qzeros, scales, g_idx). Pure torch."""
    import torch

    out_f, in_f = w.shape
    if in_f % group_size or in_f % 8 or out_f % 8:
        raise ValueError(f"a weight of shape {tuple(w.shape)}: group_size {group_size} (and 8) must divide its "
                         "input size, and 8 its output size")
    g = w.float().reshape(out_f, in_f // group_size, group_size)
    scale = (g.abs().amax(dim=-1, keepdim=True) * 2 / 15).clamp(min=1e-8)
    q = (torch.round(g / scale) + 8).clamp(0, 15).to(torch.int32).reshape(out_f, in_f)
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=w.device)
    qweight = (q.t().reshape(in_f // 8, 8, out_f) << shifts.view(1, 8, 1)).sum(dim=1, dtype=torch.int32)
    groups = in_f // group_size
    zeros = torch.full((groups, out_f // 8, 8), 7, dtype=torch.int32, device=w.device)  # zero 8, stored - 1
    qzeros = (zeros << shifts.view(1, 1, 8)).sum(dim=-1, dtype=torch.int32)
    return {"qweight": qweight.contiguous(), "qzeros": qzeros.contiguous(),
            "scales": scale.squeeze(-1).t().to(torch.float16).contiguous(),
            "g_idx": (torch.arange(in_f, dtype=torch.int32, device=w.device) // group_size).contiguous()}


def dequantize(t: dict[str, Any], group_size: int):
    """The weight [out, in] the GPTQ v1 tensors stand for (tests; what a kernel computes with). Pure torch."""
    import torch

    qweight, scales = t["qweight"], t["scales"]
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=qweight.device)
    q = ((qweight.unsqueeze(1) >> shifts.view(1, 8, 1)) & 15).reshape(-1, qweight.shape[1])  # [in, out]
    zq = (t["qzeros"].unsqueeze(-1) >> shifts.view(1, 1, 8)) & 15
    zero = (zq.reshape(scales.shape[0], -1) + 1).repeat_interleave(group_size, dim=0)  # [in, out]
    return ((q - zero).float() * scales.float().repeat_interleave(group_size, dim=0)).t()


def _is_quantized(name: str) -> bool:
    return name.endswith(".weight") and ".layers." in name and name.split(".")[-2] in QUANTIZED


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    refuse_synthetic("rtn", model_manifest, "it rounds the saved weight files", files_suffice=True)
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    model_dir, out_dir, gs = Path(model_dir), Path(out_dir), int(params["group_size"])
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"rtn: {model_dir} has no .safetensors weights")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    counts = {"quantized": 0, "kept": 0}
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards):
        tensors: dict[str, Any] = {}
        with safe_open(str(shard), framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                if _is_quantized(name):
                    base = name.removesuffix(".weight")
                    for k, v in quantize_weight(t.to(device), gs).items():
                        tensors[f"{base}.{k}"] = v.cpu()
                    counts["quantized"] += 1
                else:
                    tensors[name] = t.contiguous()
                    counts["kept"] += 1
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        print(f"rtn: {shard.name} -> {fname} ({counts['quantized']} layers so far, on {device})", flush=True)
        save_file(tensors, str(out_dir / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in tensors})
    (out_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    qcfg = {"quant_method": "gptq", "bits": BITS, "group_size": gs, "sym": True, "desc_act": False,
            "checkpoint_format": "gptq", "true_sequential": False, "damp_percent": 0.0}
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["quantization_config"] = qcfg
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    copied = [n for n in [*TOKENIZER_FILES, "generation_config.json", "synthetic.json"] if (model_dir / n).exists()]
    for n in copied:
        shutil.copy(model_dir / n, out_dir / n)
    return {"library": "llmbench rtn (round-to-nearest, GPTQ v1 layout)", "library_versions": versions("torch", "safetensors"),
            "quantization_config": qcfg, "layers": counts, "quantized_on": device, "copied_files": copied,
            "calibration": None}
