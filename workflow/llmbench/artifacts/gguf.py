"""GGUF for llama.cpp: convert the HF model directory to an F32 GGUF with llama.cpp's own converter, then quantize.

Params: ``PARAMS`` below (docs/options.md): ``type``, the llama.cpp file type (llama-quantize's names).

Steps (all in the ``llamacpp`` env):
  1. ``convert_hf_to_gguf.py --outtype f32`` (lossless from the fp32 safetensors). The script is not part of the
     llama-cpp-python wheel; it ships in its sdist under ``vendor/llama.cpp`` together with the ``gguf-py`` it
     imports, so it is taken from the sdist of exactly the installed llama-cpp-python version (same llama.cpp
     commit as the library that quantizes and runs it). Looked up, in order: ``$LLMBENCH_LLAMACPP_SRC`` (a
     llama.cpp source dir), an extracted copy in the cache (``$LLMBENCH_CACHE`` or ``<env prefix>/share/llmbench``),
     ``$LLMBENCH_LLAMACPP_SDIST`` (the .tar.gz), else ``pip download --no-binary :all:`` of that version.
  2. ``llama_cpp.llama_model_quantize`` (the C API behind ``llama-quantize``) from F32 to ``type``.
  3. The HF tokenizer files are copied to ``tokenizer/`` so the engine encodes prompts with the same ids as the
     HF engine (chat template included).
The manifest records the converter's origin and hashes, the llama.cpp commit, the file type read back from the
GGUF and how many tensors ended up in each ggml type (K-quants fall back to other types for rows whose length
is not a multiple of 256, e.g. hidden size 576: that is visible there).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from llmbench.artifacts import refuse_synthetic
from llmbench.formats import TOKENIZER_FILES as HF_TOKENIZER_FILES
from llmbench.formats.gguf import TOKENIZER_DIR, file_type_name
from llmbench.core.options import Option, REQUIRED
from llmbench.provenance import version_of, versions
from llmbench.provenance.manifest import sha256_file

ENV = "llamacpp"
FORMAT = "gguf"  # one GGUF file + the HF tokenizer (tokenizer/)

# params.type -> name of the llama_ftype constant in llama_cpp (LLAMA_FTYPE_<...>). The IQ* types are left out:
# most need an importance matrix (llama-quantize --imatrix), which this builder does not compute.
QUANT_TYPES = {
    "F32": "ALL_F32", "F16": "MOSTLY_F16", "BF16": "MOSTLY_BF16",
    "Q8_0": "MOSTLY_Q8_0", "Q6_K": "MOSTLY_Q6_K",
    "Q5_K_M": "MOSTLY_Q5_K_M", "Q5_K_S": "MOSTLY_Q5_K_S", "Q5_1": "MOSTLY_Q5_1", "Q5_0": "MOSTLY_Q5_0",
    "Q4_K_M": "MOSTLY_Q4_K_M", "Q4_K_S": "MOSTLY_Q4_K_S", "Q4_1": "MOSTLY_Q4_1", "Q4_0": "MOSTLY_Q4_0",
    "Q3_K_L": "MOSTLY_Q3_K_L", "Q3_K_M": "MOSTLY_Q3_K_M", "Q3_K_S": "MOSTLY_Q3_K_S", "Q2_K": "MOSTLY_Q2_K",
}
PARAMS = {"type": Option(str, REQUIRED, "llama.cpp file type (the IQ* types are left out: most need an "
                          "importance matrix)", choices=tuple(QUANT_TYPES))}

GGUF_FILE = "model.gguf"
# copied to TOKENIZER_DIR, with config.json (AutoTokenizer reads the model type from it where
# tokenizer_config.json names no tokenizer class)
TOKENIZER_FILES = (*HF_TOKENIZER_FILES, "config.json")
# sha256 of the PyPI sdists whose converter has been used here; a mismatch stops the build.
KNOWN_SDIST_SHA256 = {"0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"}
# What the builder needs from the sdist (vendor/llama.cpp/...).
_SRC_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")




def sha256_tree(root: Path, rels: list[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(rels):
        h.update(rel.encode() + b"\0" + sha256_file(root / rel).encode() + b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- converter source
def _cache_root() -> Path:
    if os.environ.get("LLMBENCH_CACHE"):
        return Path(os.environ["LLMBENCH_CACHE"])
    root = Path(sys.prefix) / "share" / "llmbench"
    try:
        root.mkdir(parents=True, exist_ok=True)
        return root
    except OSError:
        return Path.home() / ".cache" / "llmbench"


def _extract_sdist(sdist: Path, dest: Path) -> None:
    """vendor/llama.cpp/{converter, conversion/, gguf-py/, LICENSE} and CHANGELOG.md of the sdist -> dest."""
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) < 2 or not (m.isfile() or m.isdir()):
                continue
            rel = parts[1]
            if rel == "CHANGELOG.md":
                target = tmp / "CHANGELOG.md"
            elif rel.startswith("vendor/llama.cpp/"):
                sub = rel[len("vendor/llama.cpp/"):]
                if not any(sub == p or (p.endswith("/") and sub.startswith(p)) for p in _SRC_PARTS):
                    continue
                if "/tests/" in sub or "__pycache__" in sub:
                    continue
                target = tmp / "llama.cpp" / sub
            else:
                continue
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    (tmp / "SDIST_SHA256").write_text(sha256_file(sdist) + "  " + sdist.name + "\n")
    os.chmod(tmp, 0o755)
    try:
        os.replace(tmp, dest)
    except OSError:  # another build extracted it meanwhile
        if not dest.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def converter_source() -> tuple[Path, dict[str, Any]]:
    """(llama.cpp source dir holding convert_hf_to_gguf.py, origin facts for the manifest)."""
    if os.environ.get("LLMBENCH_LLAMACPP_SRC"):
        src = Path(os.environ["LLMBENCH_LLAMACPP_SRC"])
        if not (src / "convert_hf_to_gguf.py").is_file():
            raise FileNotFoundError(f"LLMBENCH_LLAMACPP_SRC={src} has no convert_hf_to_gguf.py")
        commit = None
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                                    check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
        return src, {"from": f"LLMBENCH_LLAMACPP_SRC={src}", "llama_cpp_commit": commit}

    version = version_of("llama-cpp-python")
    if version is None:
        raise RuntimeError("llama-cpp-python is not installed in this interpreter; the gguf builder runs in the "
                           "llamacpp env (envs/llamacpp.yaml)")
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / f"llama-cpp-python-{version}-src"
    sdist_name = f"llama_cpp_python-{version}.tar.gz"
    if not (dest / "llama.cpp" / "convert_hf_to_gguf.py").is_file():
        sdist = Path(os.environ.get("LLMBENCH_LLAMACPP_SDIST", "")) if os.environ.get("LLMBENCH_LLAMACPP_SDIST") else None
        if sdist is None or not sdist.is_file():
            dl = Path(tempfile.mkdtemp(prefix="sdist-", dir=root))
            print(f"downloading the llama-cpp-python {version} sdist for convert_hf_to_gguf.py ...", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={version}", "-d", str(dl)], check=True)
            sdist = dl / sdist_name
        else:
            dl = None
        if sdist.name != sdist_name:
            raise RuntimeError(f"{sdist} is not {sdist_name} (the installed llama-cpp-python is {version})")
        known = KNOWN_SDIST_SHA256.get(version)
        if known and sha256_file(sdist) != known:
            raise RuntimeError(f"{sdist}: sha256 {sha256_file(sdist)} is not the PyPI sdist's {known}")
        _extract_sdist(sdist, dest)
        if dl is not None:
            shutil.rmtree(dl, ignore_errors=True)
    changelog = (dest / "CHANGELOG.md").read_text() if (dest / "CHANGELOG.md").exists() else ""
    return dest / "llama.cpp", {
        "from": f"PyPI sdist {sdist_name}, vendor/llama.cpp",
        "sdist_sha256": (dest / "SDIST_SHA256").read_text().split()[0],
        "llama_cpp_commit": llama_cpp_commit(changelog, version),
    }


def llama_cpp_commit(changelog: str, version: str) -> str | None:
    """The llama.cpp commit a llama-cpp-python release vendors, from its CHANGELOG ("update llama.cpp to
    ggml-org/llama.cpp@<sha>", the first such line of that version's section)."""
    m = re.search(rf"^## \[{re.escape(version)}\](.*?)(?=^## \[)", changelog, re.S | re.M)
    if not m:
        return None
    c = re.search(r"llama\.cpp@([0-9a-f]{7,40})", m.group(1))
    return c.group(1) if c else None


# ---------------------------------------------------------------------------------------------- GGUF read-back
def gguf_facts(path: Path) -> dict[str, Any]:
    """File type, architecture and tensor types, read back from a GGUF file (gguf-py's reader)."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))

    def field(key):
        f = r.fields.get(key)
        if f is None:
            return None
        v = f.contents()
        return v

    ftype = field("general.file_type")
    types = Counter(t.tensor_type.name for t in r.tensors)
    elements = Counter()
    for t in r.tensors:
        elements[t.tensor_type.name] += int(t.n_elements)
    total = sum(elements.values()) or 1
    return {
        "file_type": file_type_name(ftype),
        "file_type_id": int(ftype) if ftype is not None else None,
        "architecture": field("general.architecture"),
        "quantization_version": field("general.quantization_version"),
        "tokenizer_model": field("tokenizer.ggml.model"),
        "tokenizer_pre": field("tokenizer.ggml.pre"),
        "tensor_count": len(r.tensors),
        "tensor_types": dict(sorted(types.items())),
        # share of all weights (elements) stored in each type: what "Q4_K_M" really means for this model
        "element_share_by_type": {k: round(v / total, 4) for k, v in sorted(elements.items())},
        "n_elements": int(sum(int(t.n_elements) for t in r.tensors)),
    }


# ---------------------------------------------------------------------------------------------- build
def quantize(src: Path, dst: Path, qtype: str, nthread: int = 0) -> None:
    import llama_cpp

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_" + QUANT_TYPES[qtype])
    params.nthread = nthread
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src.name} -> {qtype}) returned {rc}")


def _converter_facts(src: Path, origin: dict[str, Any]) -> dict[str, Any]:
    """``origin`` (where the converter came from) plus hashes of the script, its conversion/ package and the
    gguf-py it imports, so the manifest pins exactly what converted the model."""
    pyproject = src / "gguf-py" / "pyproject.toml"
    m = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M) if pyproject.exists() else None
    return {
        **origin,
        "script": "convert_hf_to_gguf.py",
        "script_sha256": sha256_file(src / "convert_hf_to_gguf.py"),
        "conversion_sha256": sha256_tree(src, [p.relative_to(src).as_posix() for p in (src / "conversion").rglob("*.py")]),
        "gguf_py_sha256": sha256_tree(src, [p.relative_to(src).as_posix() for p in (src / "gguf-py" / "gguf").rglob("*.py")]),
        "gguf_py_version": m.group(1) if m else None,
    }


def converter_outtype(model_dir: Path, qtype: str) -> str:
    """The converter's lossless output type: f16 for a float16 checkpoint (a 7B model's F32 GGUF would be 27 GB
    on disk), else f32; F32 asked for is always f32."""
    import json

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    stored = cfg.get("dtype") or cfg.get("torch_dtype")
    return "f16" if stored == "float16" and qtype != "F32" else "f32"


def _convert_and_quantize(script: Path, model_dir: Path, out_dir: Path, qtype: str, outtype: str = "f32") -> dict[str, Any]:
    """HF dir -> lossless GGUF (``outtype``; the converter, a child process) -> ``qtype`` at out_dir/GGUF_FILE,
    in a scratch directory removed afterwards; returns the timings and the converter's peak RSS."""
    work = Path(tempfile.mkdtemp(prefix=".gguf-work-", dir=out_dir))
    try:
        f32 = work / f"model-{outtype}.gguf"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("NO_LOCAL_GGUF", None)  # the converter must use the gguf-py shipped beside it
        cmd = [sys.executable, str(script), str(model_dir.resolve()), "--outtype", outtype, "--outfile", str(f32)]
        print("+ " + " ".join(cmd), flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        convert_s = time.perf_counter() - t
        # the converter is a child process: its peak RSS is not in the manifest's peak_rss_bytes
        convert_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

        t = time.perf_counter()
        if qtype == outtype.upper():
            os.replace(f32, out_dir / GGUF_FILE)
        else:
            print(f"quantizing {outtype.upper()} -> {qtype} with llama_model_quantize ...", flush=True)
            quantize(f32, out_dir / GGUF_FILE, qtype, nthread=len(os.sched_getaffinity(0)))
        quantize_s = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"convert_time_s": round(convert_s, 3), "converter_peak_rss_bytes": convert_rss,
            "quantize_time_s": round(quantize_s, 3)}


def copy_tokenizer(model_dir: Path, out_dir: Path) -> list[str]:
    """The HF tokenizer files into TOKENIZER_DIR (the engine encodes with them); returns the names copied."""
    tok = out_dir / TOKENIZER_DIR
    tok.mkdir()
    copied = []
    for name in TOKENIZER_FILES:
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, tok / name)
            copied.append(name)
    return copied


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    qtype = params["type"]
    refuse_synthetic("gguf", model_manifest, "convert_hf_to_gguf.py converts them", files_suffice=True)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    src, origin = converter_source()
    outtype = converter_outtype(model_dir, qtype)
    origin = {**_converter_facts(src, origin), "outtype": outtype}
    timings = _convert_and_quantize(src / "convert_hf_to_gguf.py", model_dir, out_dir, qtype, outtype)
    facts = gguf_facts(out_dir / GGUF_FILE)
    if facts["file_type"] != qtype:
        raise RuntimeError(f"the GGUF written says file type {facts['file_type']}, {qtype} was asked for")
    copied = copy_tokenizer(model_dir, out_dir)
    origin_model = {k: model_manifest.get(k) for k in ("converted_from", "gguf_file", "dequantized_to")
                    if model_manifest.get(k)}
    return {
        "library": "llama.cpp (convert_hf_to_gguf.py + llama_model_quantize via llama-cpp-python)",
        "library_versions": {**versions("llama-cpp-python", "gguf", "torch", "transformers", "numpy",
                                        "sentencepiece", "safetensors"),
                             "llama.cpp": origin.get("llama_cpp_commit")},
        "quant_type": qtype,
        "gguf_file": GGUF_FILE,
        "gguf": facts,
        "converter": origin,
        "quantizer": "llama_cpp.llama_model_quantize (default params)" if qtype != "F32" else None,
        **timings,
        "tokenizer_dir": TOKENIZER_DIR,
        "tokenizer_files": copied,
        # the embedded model was itself dequantized from a GGUF: requantizing it is not the same as
        # quantizing the original checkpoint
        "input_model_origin": origin_model or None,
    }
