"""SGLang's OpenAI-compatible server as a server step. Serving scenarios only.

The launch is SGLang's documented one, ``python -m sglang.launch_server --model-path <dir> --host --port``, on
the artifact's HF directory, with exact lengths asked for by SGLang's sampling fields ``ignore_eos`` and
``min_tokens``. UNVERIFIED here: ``pip install sglang==0.5.23`` resolves to its CUDA 13 stack (207 packages:
torch 2.14.1, nvidia-* cu13, flashinfer, sglang-kernel; a dry run on the CPU dev box, 2026-12-03), its CPU backend
needs a source build of sgl-kernel (not tried), and the GPU machines lent to this project have no network to
install it. A job where SGLang or a CUDA GPU is missing writes one unverified row with the check that failed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from llmbench.engines._launched import cuda_problem, tokenizer_dir  # noqa: F401 (the engine's tokenizer_dir)
from llmbench.engines.base import Placement
from llmbench.planning.options import Option, at_least

ENV = "sglang"
ACCEPTS = ("hf",)  # artifact formats this engine loads (see the artifact modules' FORMAT)

OPTIONS = {
    "dtype": Option(str, "auto", "--dtype", choices=("auto", "float16", "bfloat16")),
    "tp_size": Option(int, 1, "--tp-size: tensor-parallel GPUs", check=at_least(1)),
    "mem_fraction_static": Option((float, None), None, "--mem-fraction-static (null: SGLang's default)"),
    "disable_radix_cache": Option(bool, True, "--disable-radix-cache: no prefix reuse between requests (as the "
                                  "other engines are run); false for a shared-prefix study"),
}


def placement(options: dict[str, Any]) -> Placement:
    return Placement(device="cuda", gpus=int(options["tp_size"]))


def server(artifact_dir: Path, manifest: dict[str, Any], opts: dict[str, Any], host: str, port: int):
    from llmbench.serving.server import ServerCommand

    argv = [sys.executable, "-m", "sglang.launch_server", "--model-path", str(Path(artifact_dir).resolve()),
            "--host", host, "--port", str(port), "--dtype", opts["dtype"], "--tp-size", str(opts["tp_size"]),
            "--served-model-name", "llmbench", "--enable-metrics"]
    if opts["mem_fraction_static"] is not None:
        argv += ["--mem-fraction-static", str(opts["mem_fraction_static"])]
    if opts["disable_radix_cache"]:
        argv.append("--disable-radix-cache")
    return ServerCommand(argv=argv, model_name="llmbench", ready_path="/v1/models", metrics_path=None,
                         facts={"server": "sglang.launch_server", "argv": argv, "dtype_asked": opts["dtype"],
                                "prefix_reuse": "radix cache off" if opts["disable_radix_cache"] else "radix cache on"})


def launcher_problem(opts: dict[str, Any]) -> str | None:
    if importlib.util.find_spec("sglang") is None:
        return "sglang is not installed in this env (envs/sglang.yaml installs its CUDA build)"
    return cuda_problem()


def request_options(max_new_tokens: int, end_ids: list[int]) -> dict[str, Any]:
    n = int(max_new_tokens)
    return {"ignore_eos": True, "min_tokens": n}
