"""Hugging Face Text Generation Inference: its launcher as a server step. Serving scenarios only.

The launch is TGI's documented one, ``text-generation-launcher --model-id <dir> --hostname --port`` (what its
Docker image runs), on the artifact's HF directory. UNVERIFIED here: PyPI has only TGI's client
(``text-generation``), not the launcher, which is a Rust binary shipped in the Docker image
(ghcr.io/huggingface/text-generation-inference) or built from source, and it needs a CUDA GPU; the GPU machines
lent to this project have no network and no Docker. A job whose launcher is missing writes one unverified row
that says which check failed (:func:`launcher_problem`) and records the command it would have run.

Exact lengths: TGI's OpenAI-compatible API has no ignore_eos/min_tokens field, so a request that ends early fails
its count check (the row says so) rather than being counted short.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmbench.engines._launched import cuda_problem, tokenizer_dir  # noqa: F401 (the engine's tokenizer_dir)
from llmbench.engines.base import Placement
from llmbench.planning.options import Option, at_least

ENV = "tgi"
ACCEPTS = ("hf",)  # artifact formats this engine loads (see the artifact modules' FORMAT)
LAUNCHER = "text-generation-launcher"

OPTIONS = {
    "dtype": Option((str, None), None, "--dtype (null: TGI's choice from the checkpoint)",
                    choices=(None, "float16", "bfloat16")),
    "num_shard": Option(int, 1, "--num-shard: GPUs the model is sharded over", check=at_least(1)),
    "max_total_tokens": Option(int, 2048, "--max-total-tokens: prompt + new tokens per request", check=at_least(16)),
}


def placement(options: dict[str, Any]) -> Placement:
    return Placement(device="cuda", gpus=int(options["num_shard"]))


def server(artifact_dir: Path, manifest: dict[str, Any], opts: dict[str, Any], host: str, port: int):
    from llmbench.serving.server import ServerCommand

    argv = [LAUNCHER, "--model-id", str(Path(artifact_dir).resolve()), "--hostname", host, "--port", str(port),
            "--num-shard", str(opts["num_shard"]), "--max-total-tokens", str(opts["max_total_tokens"])]
    if opts["dtype"]:
        argv += ["--dtype", opts["dtype"]]
    return ServerCommand(argv=argv, model_name="tgi", ready_path="/health", metrics_path=None,
                         facts={"server": LAUNCHER, "argv": argv, "dtype_asked": opts["dtype"],
                                "exact_length": "not requestable (no ignore_eos): early EOS fails the count check"})


def launcher_problem(opts: dict[str, Any]) -> str | None:
    if shutil.which(LAUNCHER) is None:
        return (f"{LAUNCHER} is not on PATH: TGI's launcher is not on PyPI (only its client is); it comes in "
                "the Docker image ghcr.io/huggingface/text-generation-inference or from a source build")
    return cuda_problem()


def request_options(max_new_tokens: int, end_ids: list[int]) -> dict[str, Any]:
    return {}
