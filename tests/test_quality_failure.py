"""A quality-scoring failure inside the benchmark job is the line's quality status, with its reason; the job's
speed rows are kept (issue 32, item 5: a user's model whose reference tokenizer came out rewritten made the
scoring refuse, and that refusal failed both benchmark jobs, losing every measured request)."""

import pandas as pd

from llmbench import engines
from llmbench.analysis import tables
from llmbench.job import bench
from test_requests import FakeEngine
from test_rows import dirs, spec_for  # noqa: F401 - the fixture is used by name


class ScoringRaises(FakeEngine):
    def tokenize_plain(self, text):
        return [1, 2, 3, 4, 5]

    def score(self, ids):
        raise RuntimeError("the two tokenizers differ")


def test_a_scoring_failure_keeps_the_speed_rows_and_becomes_the_quality_status(dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.roofline, "read_bandwidth", lambda d, **kw: (5e9, "fake"))
    monkeypatch.setattr(engines, "create", lambda name: ScoringRaises())
    spec = spec_for(*dirs)
    spec["quality"] = {"reference_artifact": "a", "reference_variant": "v", "heldout_tokens": 5, "window": 5,
                       "kl_top_k": 2}
    out = bench.run_job(spec, tmp_path / "run.parquet", log=lambda m: None, quality_out=tmp_path / "q.parquet")
    df = pd.read_parquet(out)
    assert (df["success"] & ~df["warmup"]).sum() == 9   # every measured request's row survived
    q = pd.read_parquet(tmp_path / "q.parquet").iloc[0]
    assert q["status"] == "failed" and q["failure"] == "RuntimeError: the two tokenizers differ"
    summary = tables.add_quality(tables.summarize(df), df, [str(tmp_path / "q.parquet")],
                                 {"reference_artifact": "a", "reference_variant": "v", "agreement_tokens": 4})
    line = summary.iloc[0]
    assert line["quality_status"] == "failed: RuntimeError: the two tokenizers differ" and line["tokens_per_s"] > 0
    assert pd.isna(line["perplexity"])
    note = tables.quality_notes(summary, [str(tmp_path / "q.parquet")], {"reference_artifact": "a"})
    assert "Quality of llamacpp / v on a not scored: failed: RuntimeError: the two tokenizers differ" in note


def test_the_reference_artifact_carries_the_models_tokenizer_files_as_they_were(embedded_model_dir, tmp_path):
    """Bytes and hashes of the model's tokenizer files, never a re-save through a tokenizer class (which rewrote
    a user's tokenizer_config: another tokenizer_class, a pad token added)."""
    import hashlib
    import json
    import shutil

    import pytest

    pytest.importorskip("transformers")
    from llmbench import artifacts
    from llmbench.provenance import manifest

    model = tmp_path / "model"
    shutil.copytree(embedded_model_dir, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"   # a class name transformers 5 re-saves as another
    (model / "tokenizer_config.json").write_text(json.dumps(config, indent=1))  # not save_pretrained's layout
    manifest.write(model, "model", **{k: v for k, v in manifest.read(embedded_model_dir).items()
                                      if k not in ("files", "content_hash", manifest.SELF_HASH, "kind", "total_bytes", "created")})
    art = tmp_path / "reference"
    built = artifacts.build("reference", model, artifacts.resolved("reference", {}), art)
    for name, digest in built["tokenizer_files_sha256"].items():
        assert (art / name).read_bytes() == (model / name).read_bytes(), name
        assert digest == hashlib.sha256((model / name).read_bytes()).hexdigest() == built["files"][name]["sha256"]
    assert "tokenizer_config.json" in built["tokenizer_files_sha256"]
