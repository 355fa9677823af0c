"""Quality columns: the frozen corpus, one quality job per scoring variant, KL against the reference, and
the merge's checks (held-out text, artifact hash). No engine library needed."""

import json
from pathlib import Path
import platform
import sys
import types

import pytest

from llmbench.core import corpus


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
    assert "core/data/*" in data


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


def _quality_file(tmp_path, artifact: str, dequantized_from: dict) -> Path:
    """A quality table as a benchmark job writes it, with only what quality_notes reads filled in."""
    import pyarrow.parquet as pq

    from llmbench.core import schema

    row = {c.name: None for c in schema.QUALITY_COLUMNS}
    row.update({"artifact": artifact, "argmax_ids": [], "topk_ids": [], "topk_logprobs": [],
                "dequantized_from": json.dumps(dequantized_from, sort_keys=True)})
    out = tmp_path / f"{artifact}.quality.parquet"
    pq.write_table(schema.QUALITY.from_records([row]), out)
    return out


def test_a_dequantized_reference_is_named_as_a_quantized_model_under_the_table(tmp_path):
    """The merged table says that quality figures are relative to a 4-bit model when the reference artifact's
    quality row says its weights were dequantized from a quantized GGUF (the embedded model's case), and says
    nothing of the kind for a reference made from unquantized weights."""
    import pandas as pd

    from llmbench.analysis import tables

    summary = pd.DataFrame({"quality_borrowed": [False], "quality_status": ["scored"], "kl_note": [""]})
    spec = {"reference_artifact": "ref"}
    quantized = _quality_file(tmp_path, "ref", {"quantized": True, "file_type": "Q4_1", "file": "m.Q4_1.gguf"})
    note = tables.quality_notes(summary, [quantized], spec)
    assert "reference artifact ref is a dequantized Q4_1 model (m.Q4_1.gguf)" in note
    assert "relative to a quantized model" in note
    (tmp_path / "plain").mkdir()
    plain = _quality_file(tmp_path / "plain", "ref", {})
    assert "dequantized" not in tables.quality_notes(summary, [plain], spec)
    other = _quality_file(tmp_path, "other", {"quantized": True, "file_type": "Q4_1", "file": "m.Q4_1.gguf"})
    assert "dequantized" not in tables.quality_notes(summary, [other], spec)  # not the reference: no note


# ---------------------------------------------------------------- KL over the reference's top-K (item 4)

P = [0.5, 0.3, 0.15, 0.05]
Q = [0.4, 0.4, 0.1, 0.1]


def test_kl_over_the_top_k_plus_a_rest_bucket_by_hand():
    import math

    import numpy as np

    from llmbench.analysis import quality
    lp, lq = np.log([P]), np.log([Q])
    ids, vals = quality.topk(lp, 2)
    assert ids.tolist() == [[0, 1]] and np.allclose(vals, np.log([[0.5, 0.3]]))
    kl2 = quality.kl_topk_lower_bound(vals, np.take_along_axis(lq, ids.astype(np.int64), axis=1))[0]
    by_hand = 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.4) + 0.2 * math.log(0.2 / 0.2)
    assert kl2 == pytest.approx(by_hand, abs=1e-6) and by_hand == pytest.approx(0.025267, abs=1e-6)
    full = sum(p * math.log(p / q) for p, q in zip(P, Q))
    ids4, vals4 = quality.topk(lp, 4)
    kl4 = quality.kl_topk_lower_bound(vals4, np.take_along_axis(lq, ids4.astype(np.int64), axis=1))[0]
    assert kl4 == pytest.approx(full, abs=1e-6) and kl2 < full  # a lower bound, exact with the whole vocabulary
    same = quality.kl_topk_lower_bound(vals, vals)[0]
    assert same == pytest.approx(0.0, abs=1e-9)


class FakeEngine:
    """log_probs from a fixed table of distributions per position (vocab 4); tokenizes every text the same."""

    name = "fake"

    def __init__(self, dist, full=True):
        import numpy as np
        self.lp = np.log(np.asarray(dist, dtype=np.float64)).astype(np.float32)
        if full:
            self.log_probs = lambda ids: self.lp[: len(ids) - 1]

    def load(self, artifact_dir, manifest, options):
        from llmbench.core.engine import Loaded
        return Loaded(engine_version="0", device="cpu", device_name="fake", weight_bytes=1,
                      runtime={"dtype": "float32"}, library_versions={})

    def tokenize_plain(self, text):
        return [0, 1, 2, 3, 0]

    def score(self, ids):
        from llmbench.core.engine import score_from_log_probs
        return score_from_log_probs(self.lp[: len(ids) - 1], ids)


@pytest.fixture
def artifact(tmp_path):
    from llmbench.provenance import manifest
    art = tmp_path / "artifact"
    art.mkdir()
    (art / "w.bin").write_bytes(b"x")
    manifest.write(art, "artifact", method="reference", dequantized_from={"format": "gguf", "file": "m.Q4_1.gguf",
                                                                         "file_type": "Q4_1", "quantized": True})
    return art


def quality_job(tmp_path, monkeypatch, art, variant, engine, ref=None, artifact_name="a"):
    from llmbench import engines
    from llmbench.analysis import quality
    monkeypatch.setattr(engines, "create", lambda name: engine)
    spec = {"model": "m", "artifact": artifact_name, "artifact_dir": str(art), "variant_name": variant,
            "variant": {"engine": "fake-" + variant, "options": {}}, "reference_quality": ref,
            "quality": {"reference_artifact": "a", "reference_variant": "ref-v", "heldout_tokens": 5, "window": 5,
                        "kl_top_k": 2}}
    return quality.run_job(spec, tmp_path / f"{artifact_name}-{variant}.parquet", log=lambda m: None)


def test_each_line_is_scored_and_compared_with_the_reference_line(tmp_path, monkeypatch, artifact):
    import math

    import pandas as pd
    ref = quality_job(tmp_path, monkeypatch, artifact, "ref-v", FakeEngine([P] * 4))
    other = quality_job(tmp_path, monkeypatch, artifact, "q-v", FakeEngine([Q] * 4), ref=str(ref))
    r, o = pd.read_parquet(ref).iloc[0], pd.read_parquet(other).iloc[0]
    assert math.isnan(r["kl_mean"]) and r["kl_note"] == "the reference itself" and r["kl_top_k"] == 2
    assert list(r["topk_ids"]) == [0, 1] * 4 and r["precision"] == "float32"
    by_hand = 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.4)
    assert o["kl_mean"] == pytest.approx(by_hand, abs=1e-6) and o["kl_p99"] == pytest.approx(by_hand, abs=1e-6)
    ppl_p = math.exp(-(math.log(0.3) + math.log(0.15) + math.log(0.05) + math.log(0.5)) / 4)
    ppl_q = math.exp(-(math.log(0.4) + math.log(0.1) + math.log(0.1) + math.log(0.4)) / 4)
    assert r["perplexity"] == pytest.approx(ppl_p, rel=1e-5) and o["ppl_ratio"] == pytest.approx(ppl_q / ppl_p, rel=1e-5)
    assert o["teacher_forced_agreement"] == 1.0  # argmax 0 everywhere (Q's tie 0/1 resolves to 0)
    assert json.loads(r["dequantized_from"])["file_type"] == "Q4_1"


def test_an_engine_without_the_whole_distribution_gets_no_kl_and_says_why(tmp_path, monkeypatch, artifact):
    import math

    import pandas as pd
    ref = quality_job(tmp_path, monkeypatch, artifact, "ref-v", FakeEngine([P] * 4))
    other = quality_job(tmp_path, monkeypatch, artifact, "vllm-v", FakeEngine([Q] * 4, full=False), ref=str(ref))
    o = pd.read_parquet(other).iloc[0]
    assert math.isnan(o["kl_mean"]) and math.isnan(o["kl_p99"]) and "no log_probs()" in o["kl_note"]
    assert o["ppl_ratio"] > 0 and o["teacher_forced_agreement"] == 1.0  # the rest is still measured


# ---------------------------------------------------------------- merge: each line its own figure (item 2)

SPEC = {"reference_artifact": "a", "reference_variant": "ref-v", "agreement_tokens": 4}


def lines_and_rows(art_hash, variants=(("fake-ref-v", "ref-v"), ("fake-q-v", "q-v"), ("mlc", "mlc-v"))):
    import pandas as pd
    summary = pd.DataFrame([{"model": "m", "artifact": "a", "engine": e, "variant": v, "scenario": "s",
                             "synthetic_weights": False} for e, v in variants])
    df = pd.DataFrame([{"model": "m", "artifact": "a", "engine": e, "variant": v, "scenario": "s", "warmup": False,
                        "success": True, "repeat": 0, "prompt_id": "p", "output_ids": [1, 2], "artifact_hash": art_hash}
                       for e, v in variants])
    return summary, df


def scored_files(tmp_path, monkeypatch, artifact):
    ref = quality_job(tmp_path, monkeypatch, artifact, "ref-v", FakeEngine([P] * 4))
    other = quality_job(tmp_path, monkeypatch, artifact, "q-v", FakeEngine([Q] * 4), ref=str(ref))
    return [str(ref), str(other)]


def test_each_line_shows_its_own_variants_quality_and_a_borrowed_one_is_marked(tmp_path, monkeypatch, artifact):
    """Old behaviour: one figure per artifact on every line, the mlc line's unmarked."""
    from llmbench.analysis import tables
    from llmbench.provenance import manifest
    files = scored_files(tmp_path, monkeypatch, artifact)
    summary, df = lines_and_rows(manifest.read(artifact)["content_hash"])
    out = tables.add_quality(summary, df, files, SPEC).set_index("variant")
    assert out.loc["ref-v", "perplexity"] != out.loc["q-v", "perplexity"]
    assert out.loc["q-v", "quality_by"] == "fake-q-v / q-v (float32)" and not out.loc["q-v", "quality_borrowed"]
    assert out.loc["mlc-v", "quality_borrowed"] and out.loc["mlc-v", "quality_by"] == "fake-ref-v / ref-v (float32)"
    assert out.loc["mlc-v", "perplexity"] == out.loc["ref-v", "perplexity"]
    md = tables.to_markdown(_full(out.reset_index()), "", tables.quality_notes(out.reset_index(), files, SPEC))
    assert " †" in md and "† mlc / mlc-v on a: engine mlc cannot score; its quality figures were measured by " \
                            "fake-ref-v / ref-v (float32)" in md
    assert "The reference artifact a is a dequantized Q4_1 model (m.Q4_1.gguf)" in md


def _full(summary):
    """Fill the speed columns to_markdown prints (not what this test is about): every summary column the
    quality join did not make gets a plain value of its type."""
    import pandas as pd
    import pyarrow as pa
    from llmbench.core import schema

    for c in schema.SUMMARY.columns:
        if c.name not in summary:
            summary[c.name] = pd.Series([[] if pa.types.is_list(c.type) else True if c.type == pa.bool_()
                                         else "" if c.type == pa.string() else 1 if pa.types.is_integer(c.type)
                                         else 1.0] * len(summary), dtype=object if pa.types.is_list(c.type) else None)
    summary["noisy"] = False
    summary["artifact_bytes"], summary["requests"], summary["failed"] = 2**20, 1, 0
    summary["status"], summary["device_name"], summary["note"] = "verified", "cpu", ""
    summary["synthetic_weights"] = False
    return summary


def test_a_stale_quality_file_is_refused_naming_both_hashes(tmp_path, monkeypatch, artifact):
    from llmbench.analysis import tables
    from llmbench.provenance import manifest
    files = scored_files(tmp_path, monkeypatch, artifact)
    summary, df = lines_and_rows("f" * 64)
    with pytest.raises(ValueError, match="stale quality file") as e:
        tables.add_quality(summary, df, files, SPEC)
    assert manifest.read(artifact)["content_hash"] in str(e.value) and "f" * 64 in str(e.value)


def test_a_quality_row_of_another_heldout_text_is_refused(tmp_path, monkeypatch, artifact):
    import pyarrow.parquet as pq

    from llmbench.analysis import tables
    from llmbench.provenance import manifest
    files = scored_files(tmp_path, monkeypatch, artifact)
    t = pq.read_table(files[1])
    t = t.set_column(t.schema.get_field_index("heldout_sha256"), "heldout_sha256", [["0" * 64]])
    pq.write_table(t, files[1])
    summary, df = lines_and_rows(manifest.read(artifact)["content_hash"])
    with pytest.raises(ValueError, match="held-out text sha256 0{64} differs from the reference line's"):
        tables.add_quality(summary, df, files, SPEC)


def test_a_reference_variant_that_cannot_score_is_a_config_problem():
    from llmbench.planning import config as planning_config
    cfg = {"artifacts": {"a": {}}, "variants": {"m": {"engine": "mlc"}, "h": {"engine": "hf"}},
           "benchmarks": [{"artifacts": ["a"], "variants": ["m", "h"]}],
           "quality": {"reference_artifact": "a", "reference_variant": "m"}}
    assert "its engine 'mlc' cannot score" in planning_config._quality_problems(cfg)[0]
    cfg["quality"]["reference_variant"] = "h"
    assert planning_config._quality_problems(cfg) == []
