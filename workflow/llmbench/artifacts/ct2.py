"""CTranslate2 model: the HF model directory converted by CTranslate2's ``TransformersConverter``.

Params: ``PARAMS`` below (docs/options.md). The engine's ``compute_type`` decides what runs; CTranslate2
converts the weights at load time when it differs from ``quantization``.

The artifact directory holds CTranslate2's own files (model.bin, config.json, vocabulary.json) plus the HF
tokenizer files, so the engine tokenizes with the same tokenizer and chat template as the HF engine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from llmbench.artifacts import refuse_synthetic
from llmbench.formats import TOKENIZER_FILES
from llmbench.core.options import Option
from llmbench.provenance import versions

ENV = "ct2"
FORMAT = "ct2"  # CTranslate2's model directory (model.bin, config.json, vocabulary.json) + the HF tokenizer

# ctranslate2 4.8.5 ``specs.model_spec.ACCEPTED_MODEL_TYPES``; build() checks against the installed library too.
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
PARAMS = {"quantization": Option(str, "int8", "weight type written to model.bin", choices=QUANTIZATIONS)}

# TOKENIZER_FILES are copied next to the converted model (config.json is not: CTranslate2 writes its own).


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = params
    refuse_synthetic("ct2", model_manifest, "CTranslate2's converter converts them", files_suffice=True)

    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from ctranslate2.specs.model_spec import ACCEPTED_MODEL_TYPES

    if p["quantization"] not in ACCEPTED_MODEL_TYPES:  # the installed library may accept fewer
        raise ValueError(f"ct2 artifact: quantization = {p['quantization']!r}; the installed ctranslate2 "
                         f"{ctranslate2.__version__} allows {', '.join(ACCEPTED_MODEL_TYPES)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RuntimeError(f"ct2 artifact: {out_dir} is not empty; the converter replaces the whole directory")
    tokenizer_files = [f for f in TOKENIZER_FILES if (model_dir / f).exists()]
    if not {"tokenizer.json", "tokenizer.model"} & set(tokenizer_files):
        raise FileNotFoundError(f"ct2 artifact: {model_dir} has no tokenizer.json or tokenizer.model")

    stored = json.loads((model_dir / "config.json").read_text())
    # a float16 checkpoint loads as float16 (lossless; a 7B model in fp32 would take 27 GB of RAM)
    init = {"model_name_or_path": str(model_dir),
            "load_as_float16": (stored.get("dtype") or stored.get("torch_dtype")) == "float16"}
    convert = {"output_dir": "<artifact dir>", "quantization": p["quantization"], "force": True}
    print(f"converting {model_dir} with ctranslate2 {ctranslate2.__version__} TransformersConverter, "
          f"quantization={p['quantization']} ...", flush=True)
    # force=True: the converter replaces out_dir, which is the (empty) temporary directory of this build.
    TransformersConverter(**init).convert(str(out_dir), quantization=p["quantization"], force=True)
    for name in tokenizer_files:
        shutil.copy(model_dir / name, out_dir / name)

    ct2_config = json.loads((out_dir / "config.json").read_text()) if (out_dir / "config.json").exists() else None
    return {
        "library": "ctranslate2",
        "library_versions": versions("ctranslate2", "transformers", "torch", "safetensors", "numpy"),
        "quantization": p["quantization"],
        "converter": {
            "api": "ctranslate2.converters.TransformersConverter",
            "init": init,
            "convert": convert,
            "cli_equivalent": f"ct2-transformers-converter --model {model_dir} --output_dir <artifact dir> "
                              f"--quantization {p['quantization']} --force" + (" --load_as_float16" if init["load_as_float16"] else ""),
        },
        "tokenizer_files": tokenizer_files,
        "ct2_config": ct2_config,
    }
