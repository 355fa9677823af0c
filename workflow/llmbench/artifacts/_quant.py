"""Shared by the llm-compressor builders (gptq.py, awq.py): params, calibration data, CPU workarounds, save.

llm-compressor (vLLM project) is the maintained successor for both methods: AutoAWQ is deprecated upstream
(its README points to llm-compressor) and AutoGPTQ is archived (pointing to GPTQModel). One library for
both keeps one env and one checkpoint format: compressed-tensors ("pack-quantized"), which transformers
loads through `compressed-tensors` and vLLM loads natively.

Not a builder itself: the leading underscore keeps it out of the method registry.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

from llmbench.core import corpus
from llmbench.core.options import Option, at_least
from llmbench.formats import copy_tokenizer_files
from llmbench.provenance import versions

LIBRARY = "llm-compressor"
LIBRARY_NOTE = ("llm-compressor (github.com/vllm-project/llm-compressor); the older tools are not used: "
                "AutoGPTQ is archived upstream (successor GPTQModel), AutoAWQ is deprecated upstream "
                "(successor llm-compressor)")
DISTS = ("llmcompressor", "compressed-tensors", "transformers", "torch", "accelerate", "safetensors")

FORMAT = "hf"  # a transformers checkpoint (compressed-tensors), which the hf and vllm engines load

# The params both methods share (gptq.py and awq.py add theirs); see core/options.py.
PARAMS = {
    "bits": Option(int, 4, "weight bits", choices=(4, 8)),
    "group_size": Option(int, 64, "weights per quantization group; must divide every quantized layer's input "
                         "size (the embedded model's hidden size 576 rules out 128)", check=at_least(1)),
    "sym": Option(bool, True, "symmetric quantization (no zero points)"),
    "num_samples": Option(int, 16, "calibration sequences (consecutive token blocks of "
                          "llmbench.core.corpus)", check=at_least(1)),
    "seq_len": Option(int, 256, "tokens per calibration sequence", check=at_least(16)),
    "dtype": Option(str, "float32", "model dtype while calibrating (and of the saved scales)",
                    choices=("float32", "bfloat16")),
    "ignore": Option(list, ["lm_head"], "modules left unquantized",
                     check=lambda v: None if all(isinstance(x, str) for x in v)
                     else "expected a list of module names (strings)"),
}


def check_group_size(model, group_size: int, ignore: list[str]) -> list[int]:
    """Every quantized Linear's input size must be a multiple of group_size; return those sizes."""
    import torch

    sizes = sorted({m.in_features for name, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and name.split(".")[-1] not in ignore and name not in ignore})
    bad = [s for s in sizes if s % group_size]
    if bad:
        g = math.gcd(*sizes)
        ok = [d for d in (16, 32, 64, 128, 256) if g % d == 0]
        raise ValueError(f"params.group_size = {group_size}: does not divide the input size(s) {bad} of this "
                         f"model's Linear layers {sizes}; allowed group sizes here: {ok or [g]} "
                         f"(any divisor of {g})")
    return sizes


def scheme(p: dict[str, Any]) -> dict[str, Any]:
    """The weight-only quantization scheme: preset name (W4A16, W4A16_ASYM, ...) plus its resolved args."""
    return {
        "name": f"W{p['bits']}A16" + ("" if p["sym"] else "_ASYM"),
        "weights": {"num_bits": p["bits"], "type": "int", "symmetric": p["sym"], "strategy": "group",
                    "group_size": p["group_size"]},
        "activations": None,
        "targets": ["Linear"],
        "ignore": list(p["ignore"]),
    }


def config_groups(p: dict[str, Any]):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    w = scheme(p)["weights"]
    return {"group_0": QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**w))}


def on_cpu() -> bool:
    import torch

    acc = getattr(torch, "accelerator", None)
    return not (acc.is_available() if acc is not None else torch.cuda.is_available())


@contextlib.contextmanager
def cpu_workarounds(enabled: bool, method: str):
    """Yield the list of workarounds applied (recorded in the manifest); undo them afterwards.

    On a machine without an accelerator, llm-compressor 0.14's AWQ pins cached activations
    (``IntermediatesCache.pin_memory``) and torch raises "Cannot access accelerator device". Pinning only
    speeds host->device copies, so a no-op changes no numbers.
    """
    applied: list[str] = []
    if not enabled:
        yield applied
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *a, **k: None
    applied.append("llmcompressor.pipelines.cache.IntermediatesCache.pin_memory patched to a no-op "
                   "(CPU only: pinning needs an accelerator; it changes no numbers)")
    try:
        yield applied
    finally:
        IntermediatesCache.pin_memory = original


def calibration_batches(tokenizer, num_samples: int, seq_len: int) -> tuple[list[dict], dict[str, Any]]:
    """num_samples blocks of exactly seq_len tokens, cut in order from the tokenized calibration corpus.

    The corpus is tokenized once as a whole (no special tokens) and sliced into consecutive blocks, so the
    data is the first num_samples*seq_len tokens: reproducible, no shuffling.
    """
    import torch

    ids = tokenizer(corpus.calibration_text(), add_special_tokens=False)["input_ids"]
    need = num_samples * seq_len
    if need > len(ids):
        raise ValueError(f"params.num_samples x params.seq_len = {num_samples} x {seq_len} = {need} tokens, "
                         f"but the calibration corpus has only {len(ids)} tokens with this tokenizer; "
                         f"allowed: num_samples * seq_len <= {len(ids)}")
    batches = []
    for i in range(num_samples):
        block = torch.tensor([ids[i * seq_len:(i + 1) * seq_len]])
        batches.append({"input_ids": block, "attention_mask": torch.ones_like(block)})
    info = corpus.describe()
    calib = {
        "corpus": info["source"],
        "python": info["python"],
        "split": info["split"],
        "corpus_calibration_sha256": info["calibration_sha256"],
        "corpus_tokens": len(ids),
        "num_samples": num_samples,
        "seq_len": seq_len,
        "tokens": need,
        "selection": "first num_samples*seq_len tokens of the tokenized calibration text, consecutive blocks, "
                     "no shuffle, no special tokens",
        "used_tokens_sha256": _sha256_ints(ids[:need]),
    }
    if need < 128 * 256:
        calib["note"] = (f"small calibration set ({num_samples} x {seq_len} tokens, below the usual 128 x 256): "
                         "it keeps CPU builds short (AWQ's grid search especially) and may cost some quality")
    return batches, calib


def _sha256_ints(ids: list[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def run(method: str, model_dir: Path, params: dict[str, Any], out_dir: Path, recipe_fn,
        extra: dict[str, Any]) -> dict[str, Any]:
    """Load the model, calibrate with llm-compressor's ``oneshot``, save compressed-tensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcompressor import oneshot

    cpu = on_cpu()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, params["dtype"]))
    model.eval()
    in_sizes = check_group_size(model, params["group_size"], params["ignore"])
    batches, calib = calibration_batches(tokenizer, params["num_samples"], params["seq_len"])
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    recipe = recipe_fn(params)

    print(f"{method}: {scheme(params)['name']} g{params['group_size']} on "
          f"{'cpu' if cpu else 'accelerator'}, {params['num_samples']}x{params['seq_len']} calibration tokens",
          flush=True)
    t = time.perf_counter()
    with cpu_workarounds(cpu and method == "awq", method) as workarounds:
        oneshot(model=model, tokenizer=tokenizer, recipe=recipe, dataset=loader,
                num_calibration_samples=params["num_samples"], max_seq_length=params["seq_len"],
                shuffle_calibration_samples=False, pipeline="sequential")
    calibrate_s = time.perf_counter() - t
    model.save_pretrained(out_dir, save_compressed=True)
    tokenizer_files = copy_tokenizer_files(model_dir, out_dir)   # as they were: never re-saved through a class

    # what the checkpoint says (llm-compressor writes quantization_config into config.json at save)
    qcfg = json.loads((out_dir / "config.json").read_text()).get("quantization_config") or {}
    fmt = qcfg.get("format")
    return {
        "library": LIBRARY,
        "library_note": LIBRARY_NOTE,
        "library_versions": versions(*DISTS),
        "algorithm": method,
        "scheme": scheme(params),
        "format": f"compressed-tensors ({fmt})" if fmt else "compressed-tensors",
        "quantization_config": qcfg,
        "resolved_params": params,
        "recipe": _saved_recipe(out_dir) or _recipe_text(recipe),
        "calibration": calib,
        "calibration_sha256": calib["corpus_calibration_sha256"],
        "tokenizer_files_sha256": tokenizer_files,
        "calibrate_time_s": round(calibrate_s, 3),
        "quantized_input_sizes": in_sizes,
        "build_device": _device_name(cpu),
        "torch_threads": torch.get_num_threads(),
        "cpu_workarounds": workarounds,
        "pipeline": "sequential",
        **extra,
    }


def _device_name(cpu: bool) -> str:
    """Where calibration ran: "cpu", or the accelerator llm-compressor onloads layers to."""
    import torch

    if cpu:
        return "cpu"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return str(torch.accelerator.current_accelerator())


def _saved_recipe(out_dir: Path) -> Any:
    """The recipe llm-compressor itself saved next to the weights (recipe.yaml), as data."""
    path = out_dir / "recipe.yaml"
    if not path.exists():
        return None
    import yaml

    return yaml.safe_load(path.read_text())


def _recipe_text(recipe) -> Any:
    items = recipe if isinstance(recipe, list) else [recipe]
    out = []
    for m in items:
        try:
            out.append({type(m).__name__: m.model_dump(mode="json", exclude_none=True)})
        except Exception:  # noqa: BLE001 - a record, best effort
            out.append(repr(m))
    return out
