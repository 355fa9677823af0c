"""Quality columns: the frozen corpus, one quality job per scoring variant, KL against the reference, and
the merge's checks (held-out text, artifact hash). No engine library needed."""

import json
import platform
import sys
import types

import pytest

from llmbench.analysis import corpus


@pytest.fixture
def fresh_corpus():
    corpus._frozen.cache_clear()
    yield corpus
    corpus._frozen.cache_clear()


def test_heldout_text_does_not_depend_on_the_running_pythons_pydoc_data(fresh_corpus, monkeypatch):
    """Another Python release ships other pydoc topics; the held-out text must stay the packaged one."""
    before = (corpus.heldout_sha256(), corpus.calibration_sha256())
    fake = types.ModuleType("pydoc_data.topics")
    fake.topics = {"assert": "Another release's text.", "break": "Something else entirely."}
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", fake)
    corpus._frozen.cache_clear()
    assert (corpus.heldout_sha256(), corpus.calibration_sha256()) == before
    meta = json.loads((corpus.DATA / "corpus.json").read_text())
    assert corpus.heldout_sha256() == meta["heldout_sha256"] == corpus.describe()["heldout_sha256"]
    assert corpus.describe()["python"] == meta["python"]  # the Python it was frozen from, not this one


def test_a_changed_packaged_corpus_is_refused(fresh_corpus, monkeypatch, tmp_path):
    for f in corpus.DATA.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "heldout.txt").write_text(corpus.heldout_text() + " edited")
    monkeypatch.setattr(corpus, "DATA", tmp_path)
    corpus._frozen.cache_clear()
    with pytest.raises(RuntimeError, match="heldout text's sha256"):
        corpus.heldout_text()


def test_freeze_reproduces_the_packaged_files_under_the_recorded_python(fresh_corpus, tmp_path):
    meta = json.loads((corpus.DATA / "corpus.json").read_text())
    if platform.python_version() != meta["python"]:
        pytest.skip(f"corpus frozen under Python {meta['python']}, this is {platform.python_version()}")
    corpus.freeze(tmp_path)
    for name in ("heldout.txt", "calibration.jsonl", "corpus.json"):
        assert (tmp_path / name).read_bytes() == (corpus.DATA / name).read_bytes()


def test_the_corpus_data_is_package_data():
    import tomllib

    from conftest import REPO
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["llmbench"]
    assert "analysis/data/*" in data


# ---------------------------------------------------------------- what the reference is (item 1)

def test_a_gguf_models_manifest_says_what_it_was_dequantized_from(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from llmbench.models import sources
    path = tmp_path / "tiny.Q4_1.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    w.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    origin = sources.gguf_origin(path)
    assert origin == {"format": "gguf", "file": "tiny.Q4_1.gguf", "file_type": "Q4_1", "tensor_types": {"F32": 1},
                      "quantized": True}


def test_the_default_reference_is_not_called_unquantized():
    import yaml

    from conftest import REPO
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    ref = cfg["quality"]["reference_artifact"]
    assert "q4_1" in ref and "dequant" in ref  # the name says it is the 4-bit file dequantized
    text = (REPO / "config/config.yaml").read_text()
    assert "the unquantized model" not in text and "4-bit model in fp32 storage" in text
