"""MLC LLM model: weights converted by ``mlc_llm convert_weight``, ``mlc-chat-config.json`` by ``gen_config``,
and a model library compiled by ``mlc_llm compile`` (MLC's documented three-step flow, docs/compilation/
compile_models.rst and convert_weights.rst).

Params: ``PARAMS`` below (docs/options.md). ``conv_template`` only matters for MLC's chat API: the engine sends
the token ids of the HF chat template through the completions API and ignores end tokens, so the measured
tokens do not depend on it. ``device`` is the compile target, and the weights are quantized on it too.

What MLC reads: not the model directory itself but ``mlc-input/`` in the artifact, written by llmbench:
  - ``config.json``: the model's, plus a top-level ``rope_theta`` (and ``rope_scaling``) taken from
    ``rope_parameters`` when the config only has the latter. transformers 5 writes RoPE settings as
    ``rope_parameters``; MLC's LlamaConfig reads ``rope_theta`` only and would otherwise fall back to 10000
    (SmolLM2 uses 100000) without an error;
  - ``model.safetensors.index.json`` whose weight_map points at the model's safetensors files by relative path:
    given only ``model.safetensors``, MLC's weight detection writes that index INTO the source directory
    (support/auto_weight.py), which would break the model's manifest;
  - the generation config and tokenizer files (gen_config copies tokenizer files from beside config.json).

Without ``mlc_llm`` (PyPI has only empty placeholder packages and MLC's wheel index is unreachable from the
machines this was written on) ``build`` writes everything that needs no MLC: ``commands.sh`` (the exact
commands, runnable where MLC is installed), ``mlc-input/``, ``mlc-chat-config.expected.json`` (what gen_config is
predicted to write, from MLC's source) and the tokenizer files, then raises ArtifactUnavailable; the artifact
is recorded as unverified and every engine row on it says why.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llmbench.artifacts import ArtifactUnavailable, refuse_synthetic
from llmbench.formats import TOKENIZER_FILES
from llmbench.formats.mlc import DEFAULT_DEVICE, DEVICES, import_error, not_installable
from llmbench.core.options import Option, at_least

ENV = "mlc"
FORMAT = "mlc"  # MLC weights + mlc-chat-config.json + the compiled model library + the HF tokenizer

# Read from mlc-ai/mlc-llm at commit 79d603f0 (2026-07-23, tag v0.26.dev0-4), which is what the pinned nightly
# wheels (envs/mlc.yaml) are built from or close to; build() re-checks against the installed library.
MLC_SOURCE = "mlc-ai/mlc-llm@79d603f085f50500e9509fa01785ffa7ecfaaa93 (2026-07-23)"
# python/mlc_llm/quantization/quantization.py: QUANTIZATION
QUANTIZATIONS = (
    "q0f16", "q0bf16", "q0f32", "q3f16_0", "q3f16_1", "q4f16_0", "q4f16_1", "q4bf16_0", "q4bf16_1", "q4f32_1",
    "q4f16_2", "q4f16_autoawq", "q4f16_ft", "e5m2_e5m2_f16", "e4m3_e4m3_f16", "e4m3_e4m3_f16_max_calibrate",
    "fp8_e4m3fn_bf16_block_scale", "fp8_e4m3fn_bf16_block_scale_static_activation",
)
# python/mlc_llm/interface/gen_config.py: CONV_TEMPLATES
CONV_TEMPLATES = tuple(sorted((
    "llama-4", "llama-3", "llama-3_1", "chatml", "chatml_nosystem", "qwen2", "open_hermes_mistral",
    "neural_hermes_mistral", "llama_default", "llama-2", "mistral_default", "ministral3", "ministral3_reasoning",
    "gpt2", "codellama_completion", "codellama_instruct", "redpajama_chat", "rwkv_world", "gorilla",
    "gorilla-openfunctions-v2", "dolly", "oasst", "stablelm", "LM", "stablelm-3b", "gpt_bigcode", "wizardlm_7b",
    "wizard_coder_or_math", "glm", "phi-2", "phi-3", "phi-3-vision", "phi-4", "stablelm-2", "gemma_instruction",
    "gemma3_instruction", "orion", "llava", "hermes2_pro_llama3", "hermes3_llama-3_1", "tinyllama_v1_0", "aya-23",
    "deepseek", "deepseek_v2", "deepseek_v3", "deepseek_r1_qwen", "deepseek_r1_llama", "olmo", "olmo2",
    "nemotron", "llm-jp", "qwen3", "qwen3_5", "qwen3_5_nothink",
)))
OPT_LEVELS = ("O0", "O1", "O2", "O3")  # interface/compiler_flags.py: OPT_FLAG_PRESET
LIB_SUFFIX = {"metal": ".dylib"}       # MLC's docs name Linux/CUDA/Vulkan/CPU libraries .so

PARAMS = {
    "quantization": Option(str, "q4f16_1", "MLC's quantization name (q4f16_1: 4-bit weights in groups of 32, "
                           "float16 activations); QUANTIZATIONS lists mlc_llm.quantization.QUANTIZATION",
                           choices=QUANTIZATIONS),
    "conv_template": Option(str, "chatml", "MLC conversation template for gen_config (chatml is SmolLM2's "
                            "format); the measured tokens do not depend on it", choices=CONV_TEMPLATES),
    "device": Option(str, DEFAULT_DEVICE, "the compile target (mlc_llm.support.auto_device.AUTO_DETECT_DEVICES)",
                     choices=DEVICES),
    "context_window_size": Option((int, None), None, "gen_config --context-window-size (null: the model's "
                                  "max_position_embeddings)", check=at_least(1)),
    "prefill_chunk_size": Option((int, None), None, "gen_config --prefill-chunk-size (null: min(context window, "
                                 "8192))", check=at_least(1)),
    "opt": Option((str, None), None, "compile --opt (null: MLC's default, O2)", choices=OPT_LEVELS + (None,)),
}

INPUT_DIR = "mlc-input"
COMMANDS_FILE = "commands.sh"
EXPECTED_CONFIG = "mlc-chat-config.expected.json"
# gen_config.py TOKENIZER_FILES: copied from beside config.json into the output, listed in tokenizer_files
MLC_TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json",
                       "tokenizer_config.json")
# What the engine's HF tokenizer needs (same ids and chat template as the hf engine), copied to the artifact root.
HF_TOKENIZER_FILES = (*TOKENIZER_FILES, "vocab.json", "merges.txt", "added_tokens.json")
# protocol/mlc_chat_config.py: MLC_CHAT_SYSTEM_DEFAULT, applied to generation fields still unset
SYSTEM_DEFAULTS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "temperature": 1.0,
                   "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0, "top_p": 1.0}
GENERATION_FIELDS = ("temperature", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_p",
                     "pad_token_id", "bos_token_id", "eos_token_id")
GEN_CONFIG_MAX_BATCH_SIZE = 128  # cli/gen_config.py: --max-batch-size default, always applied as an override


# ------------------------------------------------------------------------------------------------ params

def check_installed(p: dict[str, Any], quantizations: tuple[str, ...], conv_templates: tuple[str, ...]) -> None:
    """The installed MLC may accept fewer quantizations and templates than its source at MLC_SOURCE (which
    PARAMS lists); raises ValueError naming the key, the value and what the installed library allows."""
    for key, allowed in (("quantization", quantizations), ("conv_template", conv_templates)):
        if p[key] not in allowed:
            raise ValueError(f"mlc artifact: {key} = {p[key]!r}; allowed values are {', '.join(allowed)}")


def lib_name(model_name: str, params: dict[str, Any]) -> str:
    """``<model>-<quantization>-<device>.so``, the naming of MLC's docs (e.g. RedPajama-...-q4f16_1-cuda.so)."""
    p = params
    return f"{model_name}-{p['quantization']}-{p['device']}{LIB_SUFFIX.get(p['device'], '.so')}"


def commands(model_dir: str | Path, out_dir: str | Path, params: dict[str, Any],
             model_name: str | None = None) -> list[list[str]]:
    """The exact argv of the three MLC commands (``mlc_llm`` as in MLC's docs; ``python -m mlc_llm`` is the same).

    ``model_dir``: the directory MLC reads config.json (and, through it, the weights) from; ``build`` passes
    ``<out_dir>/mlc-input``. ``model_name`` names the library (default: the name of ``model_dir``). ``params``:
    resolved."""
    p = params
    model_dir, out_dir = str(model_dir), str(out_dir)
    q, d = p["quantization"], p["device"]
    convert = ["mlc_llm", "convert_weight", model_dir, "--quantization", q, "--device", d, "-o", out_dir]
    gen = ["mlc_llm", "gen_config", model_dir, "--quantization", q, "--conv-template", p["conv_template"]]
    if p["context_window_size"] is not None:
        gen += ["--context-window-size", str(p["context_window_size"])]
    if p["prefill_chunk_size"] is not None:
        gen += ["--prefill-chunk-size", str(p["prefill_chunk_size"])]
    gen += ["-o", out_dir]
    lib = f"{out_dir}/lib/{lib_name(model_name or Path(model_dir).name, p)}"
    compile_ = ["mlc_llm", "compile", f"{out_dir}/mlc-chat-config.json", "--device", d]
    if p["opt"] is not None:
        compile_ += ["--opt", p["opt"]]
    compile_ += ["-o", lib]
    return [convert, gen, compile_]


def _shell_word(arg: str, out_dir: str) -> str:
    """Quote one argument; the artifact directory becomes "$OUT" so the script works after the rename."""
    if arg == out_dir:
        return '"$OUT"'
    if arg.startswith(out_dir + "/"):
        return '"$OUT"/' + shlex.quote(arg[len(out_dir) + 1:])
    return shlex.quote(arg)


def script(argvs: list[list[str]], out_dir: str | Path, header: str = "") -> str:
    """commands.sh: the commands, shell-quoted, with the artifact directory as $OUT (default: the script's dir)."""
    out_dir = str(out_dir)
    lines = ["#!/usr/bin/env bash", *(f"# {h}" if h else "#" for h in header.splitlines()),
             "set -euo pipefail",
             'OUT="${OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"  # the artifact directory']
    for argv in argvs:
        if argv[1] == "compile":  # compile refuses an output whose directory does not exist
            lines.append('mkdir -p "$OUT"/lib')
        lines.append(" ".join(_shell_word(a, out_dir) for a in argv))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- MLC's input dir

def _safetensors_names(path: Path) -> list[str]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def mlc_config(hf_config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config.json MLC is given, and what was changed: RoPE settings that transformers 5 writes only as
    ``rope_parameters`` are added in the older top-level spelling MLC reads (``rope_theta``, ``rope_scaling``)."""
    cfg, changes = dict(hf_config), []
    rope = hf_config.get("rope_parameters")
    if isinstance(rope, dict):
        if "rope_theta" not in cfg and "rope_theta" in rope:
            cfg["rope_theta"] = rope["rope_theta"]
            changes.append(f"rope_theta = {rope['rope_theta']} (from rope_parameters; MLC's LlamaConfig reads "
                           "only rope_theta and would use 10000)")
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        if cfg.get("rope_scaling") is None and scaling.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = scaling
            changes.append(f"rope_scaling = {json.dumps(scaling, sort_keys=True)} (from rope_parameters)")
    return cfg, changes


def prepare_input(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/mlc-input``: config.json as MLC reads it, a weight index pointing at the model's files
    (relative paths, valid after the artifact directory is renamed), generation config and tokenizer files."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    dest = out_dir / INPUT_DIR
    dest.mkdir(parents=True, exist_ok=True)
    hf_config = json.loads((model_dir / "config.json").read_text())
    cfg, changes = mlc_config(hf_config)
    (dest / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    rel = os.path.relpath(model_dir.resolve(), dest.resolve())
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = {k: f"{rel}/{v}" for k, v in json.loads(index.read_text())["weight_map"].items()}
    elif (model_dir / "model.safetensors").exists():
        weight_map = {k: f"{rel}/model.safetensors" for k in _safetensors_names(model_dir / "model.safetensors")}
    else:
        raise FileNotFoundError(f"mlc artifact: {model_dir} has no model.safetensors(.index.json); llmbench models "
                                "are safetensors (MLC's convert_weight also reads PyTorch .bin, not staged here)")
    (dest / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}, indent=1) + "\n")
    copied = []
    for name in ("generation_config.json", *MLC_TOKENIZER_FILES):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, dest / name)
            copied.append(name)
    return {"config_changes": changes, "weights": sorted(set(weight_map.values())), "copied": copied}


# ------------------------------------------------------------------ predicted mlc-chat-config.json

def _llama_model_config(hf: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """model/llama/llama_model.py LlamaConfig: from_dict + __post_init__, then gen_config's overrides and a
    second __post_init__ (ConfigOverrideBase.apply rebuilds the config from its dict)."""
    required = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "rms_norm_eps",
                "vocab_size")
    fields = {**dict.fromkeys(required), "tie_word_embeddings": False,
              "position_embedding_base": 0, "rope_scaling": None, "context_window_size": 0,
              "prefill_chunk_size": 0, "num_key_value_heads": 0, "head_dim": 0, "tensor_parallel_shards": 1,
              "pipeline_parallel_stages": 1, "max_batch_size": 1, "disaggregation": False}

    def post_init(c: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        if c["position_embedding_base"] == 0:
            c["position_embedding_base"] = kwargs.pop("rope_theta", 10000)
        if c["rope_scaling"] is not None and "rope_type" not in c["rope_scaling"]:
            c["rope_scaling"] = None
        if c["context_window_size"] == 0:
            for name in ("max_position_embeddings", "max_sequence_length"):
                if name in kwargs:
                    c["context_window_size"] = kwargs.pop(name)
                    break
            else:
                raise ValueError("MLC cannot determine the context window: none of context_window_size, "
                                 "max_position_embeddings, max_sequence_length in config.json")
        if c["num_key_value_heads"] == 0:
            c["num_key_value_heads"] = c["num_attention_heads"]
        if c["head_dim"] == 0:
            c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
        if c["prefill_chunk_size"] == 0 or c["prefill_chunk_size"] > c["context_window_size"]:
            c["prefill_chunk_size"] = min(c["context_window_size"], 8192)
        return c

    missing = [k for k in required if k not in hf]
    if missing:
        raise ValueError(f"MLC's LlamaConfig needs {missing} in config.json")
    c = post_init({k: hf.get(k, v) for k, v in fields.items()}, {k: v for k, v in hf.items() if k not in fields})
    c.update({k: v for k, v in overrides.items() if v is not None})
    return post_init(c, {})


def predict_chat_config(hf_config: dict[str, Any], generation_config: dict[str, Any] | None, params: dict[str, Any],
                        tokenizer_files: list[str], active_vocab_size: int | None = None) -> dict[str, Any]:
    """The essential fields of the mlc-chat-config.json ``mlc_llm gen_config`` writes (interface/gen_config.py),
    from the config.json it is given. ``tokenizer_files``: the files present beside config.json;
    ``active_vocab_size``: len() of the HF tokenizer (gen_config's step 5), None if unknown.

    Predicted for every model: model_type, quantization, conv_template (its name), tokenizer_files and the
    generation fields; the model_config block, vocab and window sizes follow MLC's LlamaConfig (model type
    llama only). Not predicted: tokenizer_info (MLC's tokenizer detection) and the conversation template's body."""
    p = params
    model_type = hf_config.get("model_type") or hf_config.get("model_config", {}).get("model_type")
    if model_type == "mixformer-sequential":
        model_type = "phi-msft"
    out: dict[str, Any] = {"version": "0.1.0", "model_type": model_type, "quantization": p["quantization"]}
    if model_type == "llama":
        mc = _llama_model_config(hf_config, {"context_window_size": p["context_window_size"],
                                             "prefill_chunk_size": p["prefill_chunk_size"],
                                             "max_batch_size": GEN_CONFIG_MAX_BATCH_SIZE})
        out.update({"model_config": mc, "vocab_size": mc["vocab_size"],
                    "context_window_size": mc["context_window_size"], "sliding_window_size": -1,
                    "prefill_chunk_size": mc["prefill_chunk_size"], "attention_sink_size": -1, "tensor_parallel_shards": mc["tensor_parallel_shards"],
                    "pipeline_parallel_stages": mc["pipeline_parallel_stages"]})
        vocab = mc["vocab_size"]
    else:
        vocab = hf_config.get("vocab_size")
        out["vocab_size"] = vocab
    out["active_vocab_size"] = active_vocab_size if active_vocab_size is not None else vocab
    for key in GENERATION_FIELDS:  # generation_config.json first, then config.json, then MLC's defaults
        for source in (generation_config or {}, hf_config):
            if source.get(key) is not None:
                out[key] = source[key]
                break
        else:
            out[key] = SYSTEM_DEFAULTS[key]
    out["tokenizer_files"] = [f for f in MLC_TOKENIZER_FILES if f in tokenizer_files]
    out["conv_template"] = {"name": p["conv_template"]}
    out["model_task"] = "chat"
    return out


def compare_chat_config(expected: dict[str, Any], actual: dict[str, Any], prefix: str = "") -> list[str]:
    """Differences between the prediction and what gen_config wrote, for the predicted keys only."""
    out = []
    for key, want in expected.items():
        where = f"{prefix}{key}"
        if key not in actual:
            out.append(f"{where}: predicted {want!r}, missing")
        elif isinstance(want, dict) and isinstance(actual[key], dict):
            out += compare_chat_config(want, actual[key], where + ".")
        elif want != actual[key] and not (isinstance(want, (int, float)) and isinstance(actual[key], (int, float))
                                          and float(want) == float(actual[key])):
            out.append(f"{where}: predicted {want!r}, gen_config wrote {actual[key]!r}")
    return out


def _active_vocab_size(model_dir: Path) -> int | None:
    """len(HF tokenizer) as gen_config computes it (fast tokenizers: vocab with added tokens)."""
    if not (model_dir / "tokenizer.json").exists():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


def expected_config(input_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    input_dir = Path(input_dir)
    gen = input_dir / "generation_config.json"
    present = [f.name for f in input_dir.iterdir() if f.is_file()]
    return predict_chat_config(json.loads((input_dir / "config.json").read_text()),
                               json.loads(gen.read_text()) if gen.exists() else None, params, present,
                               _active_vocab_size(input_dir))


# ------------------------------------------------------------------------------------------------ build

def _run(argv: list[str]) -> None:
    """One MLC command as ``python -m mlc_llm ...`` (the env's interpreter; its bin/ need not be on PATH)."""
    cmd = [sys.executable, "-m", "mlc_llm", *argv[1:]]
    print("$ " + shlex.join(cmd), flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=sys.stdout, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"mlc artifact: `{shlex.join(argv)}` failed ({proc.returncode}); its output is above")
    print(f"  ({time.perf_counter() - t:.1f} s)", flush=True)


def _write_plan(model_dir: Path, out_dir: Path, p: dict[str, Any]) -> tuple[dict[str, Any], list[list[str]], dict]:
    """Everything that needs no MLC: MLC's input directory, commands.sh with the exact commands, and the
    mlc-chat-config.json they are predicted to write. Returns (what was staged, the commands, the prediction)."""
    staged = prepare_input(model_dir, out_dir)
    argvs = commands(out_dir / INPUT_DIR, out_dir, p, model_name=model_dir.name)
    changes = "".join("; " + c for c in staged["config_changes"])
    header = (f"MLC LLM build of {model_dir.name} (llmbench artifact method mlc, params "
              f"{json.dumps(p, sort_keys=True)}).\nMLC's documented flow: convert_weight, gen_config, compile. "
              f"It reads {INPUT_DIR}/, which llmbench wrote:\nconfig.json (the model's{changes}),\n"
              f"a weight index pointing at {', '.join(staged['weights'])} and the tokenizer files.\n"
              "Run it where mlc_llm is installed (envs/mlc.yaml); OUT defaults to this directory.")
    (out_dir / COMMANDS_FILE).write_text(script(argvs, out_dir, header))
    (out_dir / COMMANDS_FILE).chmod(0o755)
    expected = expected_config(out_dir / INPUT_DIR, p)
    (out_dir / EXPECTED_CONFIG).write_text(json.dumps(expected, indent=2) + "\n")
    return staged, argvs, expected


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = params
    refuse_synthetic("mlc", model_manifest, "MLC's convert_weight quantizes them")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    error = import_error()
    if error is None:
        from mlc_llm.interface.gen_config import CONV_TEMPLATES as installed_templates
        from mlc_llm.quantization import QUANTIZATION

        check_installed(p, tuple(QUANTIZATION), tuple(sorted(installed_templates)))
    staged, argvs, expected = _write_plan(model_dir, out_dir, p)
    tokenizer_files = [f for f in HF_TOKENIZER_FILES if (model_dir / f).exists()]
    for name in tokenizer_files:
        shutil.copy(model_dir / name, out_dir / name)
    relative = [[a if not a.startswith(str(out_dir)) else "<artifact dir>" + a[len(str(out_dir)):] for a in argv]
                for argv in argvs]
    print("commands (also in commands.sh):\n" + "\n".join("  " + shlex.join(a) for a in relative), flush=True)

    if error is not None:
        raise ArtifactUnavailable(
            not_installable(error) + f"; {COMMANDS_FILE} holds the exact commands this build would run and "
            f"{EXPECTED_CONFIG} the mlc-chat-config.json they are predicted to write")

    (out_dir / "lib").mkdir(exist_ok=True)
    t = {}
    for argv in argvs:
        t0 = time.perf_counter()
        _run(argv)
        t[argv[1]] = round(time.perf_counter() - t0, 1)
    actual = json.loads((out_dir / "mlc-chat-config.json").read_text())
    differences = compare_chat_config(expected, actual)
    for d in differences:
        print(f"WARNING: mlc-chat-config.json differs from the prediction: {d}", flush=True)
    lib = Path(argvs[2][-1])
    from llmbench.provenance import versions
    return {
        "library": "mlc_llm",
        "library_versions": versions("mlc-llm-nightly-cpu", "mlc-ai-nightly-cpu", "mlc-llm", "mlc-ai",
                                     "apache-tvm-ffi", "torch", "transformers", "safetensors"),
        "quantization": p["quantization"],
        "device": p["device"],
        "model_lib": lib.relative_to(out_dir).as_posix(),
        "commands": relative,
        "run_as": f"{sys.executable} -m mlc_llm",
        "command_seconds": t,
        "mlc_input": staged,
        "expected_config_differences": differences,
        "mlc_chat_config": {k: actual.get(k) for k in ("model_type", "quantization", "context_window_size",
                                                       "prefill_chunk_size", "vocab_size", "tokenizer_files")},
        "tokenizer_files": tokenizer_files,
    }
