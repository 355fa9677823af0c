"""A TensorRT-LLM engine, for trtllm-serve's TensorRT backend (engine trtllm, artifact format trtllm-engine).

TensorRT-LLM's documented two steps (docs/source/architecture/checkpoint.md): convert the HF model into a
TensorRT-LLM checkpoint, then ``trtllm-build --checkpoint_dir --output_dir --max_batch_size --max_seq_len``.
The conversion is the library's own ``tensorrt_llm.models.automodel.AutoModelForCausalLM.from_hugging_face(dir,
dtype, mapping)`` + ``save_checkpoint`` once per tensor-parallel rank (what the examples' convert_checkpoint.py
scripts do), so no script from the repository is needed. Layout: ``checkpoint/`` (kept: what the engine was
built from), ``engine/`` (what trtllm-serve loads) and the HF tokenizer at the root (``--tokenizer``).

UNVERIFIED here: tensorrt_llm is not installable on the CPU dev box (envs/trtllm.yaml: PyPI has a placeholder
that fetches from pypi.nvidia.com, which does not resolve there; and it needs a CUDA GPU). Without it ``build``
writes commands.sh and the tokenizer and raises ArtifactUnavailable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from llmbench.artifacts import _commands, refuse_synthetic
from llmbench.core.options import Option, at_least

ENV = "trtllm"
FORMAT = "trtllm-engine"  # engine/ (config.json + rank*.engine) + checkpoint/ + the HF tokenizer

PARAMS = {
    "dtype": Option(str, "float16", "checkpoint dtype", choices=("float16", "bfloat16", "float32")),
    "tp_size": Option(int, 1, "tensor-parallel ranks the engine is built for (serve it with the same tp_size)",
                      check=at_least(1)),
    "max_batch_size": Option(int, 64, "trtllm-build --max_batch_size", check=at_least(1)),
    "max_seq_len": Option(int, 4096, "trtllm-build --max_seq_len: prompt + new tokens", check=at_least(16)),
    "gemm_plugin": Option(str, "auto", "trtllm-build --gemm_plugin", choices=("auto", "disable", "float16", "bfloat16")),
}

CONVERT = ("from tensorrt_llm import Mapping; from tensorrt_llm.models.automodel import AutoModelForCausalLM; "
           "import sys; src, dst, dtype, tp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]); "
           "[AutoModelForCausalLM.from_hugging_face(src, dtype, mapping=Mapping(world_size=tp, rank=r, tp_size=tp))"
           ".save_checkpoint(dst, save_config=(r == 0)) for r in range(tp)]")


def commands(model_dir: Path, out_dir: Path, p: dict[str, Any], python: str = "python") -> list[list[str]]:
    return [[python, "-c", CONVERT, str(model_dir), f"{out_dir}/checkpoint", p["dtype"], str(p["tp_size"])],
            ["trtllm-build", "--checkpoint_dir", f"{out_dir}/checkpoint", "--output_dir", f"{out_dir}/engine",
             "--max_batch_size", str(p["max_batch_size"]), "--max_seq_len", str(p["max_seq_len"]),
             "--gemm_plugin", p["gemm_plugin"]]]


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    refuse_synthetic("trtllm_engine", model_manifest, "the engine embeds them")
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir).resolve()
    argvs = commands(model_dir, out_dir, params)
    _commands.write_plan(out_dir, argvs, f"TensorRT-LLM engine of {model_dir.name} (llmbench artifact method "
                         "trtllm_engine)\nRun it where tensorrt_llm imports (envs/trtllm.yaml, a CUDA GPU).")
    tokenizer = _commands.copy_tokenizer(model_dir, out_dir)
    problem = _commands.import_problem("tensorrt_llm")
    if problem:
        raise _commands.unavailable("trtllm", "tensorrt_llm", problem)
    run = commands(model_dir, out_dir, params, sys.executable)
    run[1][0] = str(Path(sys.prefix) / "bin" / "trtllm-build")
    took = _commands.run(run)
    from llmbench.provenance import versions

    return {"library": "tensorrt_llm", "library_versions": versions("tensorrt-llm", "tensorrt", "torch"),
            "dtype": params["dtype"], "tp_size": params["tp_size"], "commands": argvs, "command_seconds": took,
            "tokenizer_files": tokenizer}
