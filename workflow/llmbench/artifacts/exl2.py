"""EXL2 quantization by ExLlamaV2's converter, for TabbyAPI (engine tabbyapi).

The command is the converter of the exllamav2 0.3.2 wheel (its argparse in exllamav2/conversion/convert_exl2.py:
``-i`` the HF model, ``-o`` a working directory, ``-cf`` the compiled model with its config and tokenizer files,
``-b`` bits per weight, ``-hb`` head bits, ``-c`` a calibration parquet (default: its built-in data), ``-r`` /
``-mr`` calibration rows, ``-l`` / ``-ml`` tokens per row), run as ``python -m exllamav2.conversion.convert_exl2``.
The artifact directory is the ``-cf`` output (what TabbyAPI loads as model_dir/model_name); the working
directory (measurement.json, job state) stays in ``work/``.

UNVERIFIED here: exllamav2 compiles its CUDA extension when imported (envs/exllamav2.yaml says what that did
on the CPU dev box), so without it ``build`` writes commands.sh and the tokenizer and raises
ArtifactUnavailable: the artifact is unverified and the serving rows on it say why.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from llmbench.artifacts import _commands, refuse_synthetic
from llmbench.core.options import Option, at_least

ENV = "exllamav2"
FORMAT = "exl2"  # ExLlamaV2's EXL2 model directory: quantized safetensors + config.json (quantization_config) + tokenizer

PARAMS = {
    "bits": Option(float, 4.0, "-b: target bits per weight (2.5 … 8.0)", check=lambda b: None if 2.0 <= b <= 8.0
                   else "expected 2.0 … 8.0 bits per weight"),
    "head_bits": Option(int, 6, "-hb: bits of the output layer", choices=(2, 3, 4, 5, 6, 8)),
    "dataset_rows": Option(int, 100, "-r: calibration rows", check=at_least(1)),
    "measurement_rows": Option(int, 16, "-mr: calibration rows when measuring", check=at_least(1)),
    "length": Option(int, 2048, "-l / -ml: tokens per calibration row", check=at_least(16)),
}


def commands(model_dir: Path, out_dir: Path, p: dict[str, Any], python: str = "python") -> list[list[str]]:
    return [[python, "-m", "exllamav2.conversion.convert_exl2", "-i", str(model_dir), "-o", f"{out_dir}/work",
             "-cf", str(out_dir), "-b", str(p["bits"]), "-hb", str(p["head_bits"]), "-r", str(p["dataset_rows"]),
             "-mr", str(p["measurement_rows"]), "-l", str(p["length"]), "-ml", str(p["length"])]]


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    refuse_synthetic("exl2", model_manifest, "ExLlamaV2 measures and quantizes them")
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir).resolve()
    argvs = commands(model_dir, out_dir, params)
    _commands.write_plan(out_dir, argvs, f"EXL2 quantization of {model_dir.name} (llmbench artifact method exl2)\n"
                         "Run it where exllamav2 imports (envs/exllamav2.yaml, a CUDA GPU); OUT defaults to this directory.")
    tokenizer = _commands.copy_tokenizer(model_dir, out_dir)
    problem = _commands.import_problem("exllamav2")
    if problem:
        raise _commands.unavailable("exllamav2", "exllamav2", problem)
    (out_dir / "work").mkdir(exist_ok=True)
    took = _commands.run(commands(model_dir, out_dir, params, sys.executable))
    from llmbench.provenance import versions

    return {"library": "exllamav2", "library_versions": versions("exllamav2", "torch", "safetensors"),
            "bits": params["bits"], "commands": argvs, "command_seconds": took, "tokenizer_files": tokenizer}
