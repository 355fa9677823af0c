"""Rows come from one place: rows.request_row / rows.unverified_row over a JobContext and a RequestResult.

A stand-in engine (no engine library needed) runs the real bench job, merge and quality writers."""

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from llmbench import engines
from llmbench.analysis import quality, tables
from llmbench.core.engine import Generation, Loaded
from llmbench.job import bench, rows
from llmbench.core import schema
from llmbench.job.context import JobContext
from llmbench.job.scenarios import latency
from llmbench.provenance import manifest

NAMES = {c.name for c in schema.COLUMNS}
PROVENANCE = ("model_hash", "artifact_hash", "artifact_bytes", "host", "git_commit", "config_hash", "run_id",
              "timestamp", "variant_options", "synthetic_weights", "env_hash", "model_manifest_sha256",
              "artifact_manifest_sha256")


class StandInEngine:
    """Counts up from the last prompt id; like HF, learns its weight bytes at the first request."""

    name = "standin"

    def load(self, artifact_dir, manifest, options):
        self.calls = 0
        self.loaded = Loaded(engine_version="0.0", device="cpu", device_name="stand-in", weight_bytes=1000,
                             runtime={"kind": "stand-in"}, library_versions={"standin": "0.0"},
                             input_embedding_bytes=100, embedding_row_bytes=2, tied_embeddings=False,
                             kv_bytes_per_token=10, ran_as="stand-in", threads=2)
        return self.loaded

    def encode(self, prompt):
        return [len(prompt) % 50, 7]

    def decode(self, ids):
        return " ".join(map(str, ids))

    def generate(self, input_ids, max_new_tokens, on_token):
        self.calls += 1
        if self.calls == 1:
            self.loaded.weight_bytes = 600  # e.g. compressed weights unpacked at the first forward
        out = [input_ids[-1] + i + 1 for i in range(max_new_tokens)]
        for t in out:
            on_token(t)
        return Generation(out, {"call": self.calls})

    def tokenize_plain(self, text):
        return [ord(c) % 50 for c in text[:200]]

    def score(self, ids):
        return [-1.0] * (len(ids) - 1), list(ids[1:])

    def reset_peak_memory(self):
        pass

    def peak_memory(self):
        return 123, "stand_in"


@pytest.fixture
def dirs(tmp_path):
    model, art = tmp_path / "model", tmp_path / "artifact"
    model.mkdir(), art.mkdir()
    (model / "weights.bin").write_bytes(b"m" * 64)
    m = manifest.write(model, "model")
    (art / "weights.bin").write_bytes(b"a" * 32)
    manifest.write(art, "artifact", method="reference", input_model_hash=m["content_hash"])
    return model, art


def spec_for(model, art, engine="llamacpp", options=None):
    scenario = {"kind": "latency", "prompts": str(REPO / "config/prompts/latency-9-prompts.jsonl"),
                "max_new_tokens": 3, "warmup": 1, "repeats": 1}
    return {"model": "m", "artifact": "a", "variant_name": "v", "scenario_name": "latency",
            "model_dir": str(model), "artifact_dir": str(art), "model_config": {}, "artifact_config": {},
            "variant": {"engine": engine, "options": options or {}}, "scenario": scenario}


def result(**kw):
    base = dict(input_tokens=2, requested_output_tokens=3, output_tokens=3, streamed_tokens=3,
                retokenized_tokens=None, ttft_s=0.1, latency_s=0.3, tpot_s=0.1, tokens_per_s=10.0,
                itl_s=[0.1, 0.1], peak_memory_bytes=5, memory_kind="k", output_text="x", output_ids=[1, 2, 3],
                streamed_ids=[1, 2, 3])
    return rows.RequestResult(**{**base, **kw})


def context(dirs, loaded=None):
    model, art = dirs
    return JobContext.build(spec_for(model, art), manifest.read(art), manifest.read(model), "2026-01-01T00:00:00",
                            loaded, (2e9, "test") if loaded else None)


def test_request_row_has_every_column_and_the_provenance(dirs):
    loaded = Loaded(engine_version="1", device="cpu", device_name="c", weight_bytes=42, runtime={"a": 1})
    row = rows.request_row(context(dirs, loaded), result(engine_metrics={"x": 1}, error="", request_index=4))
    assert set(row) == NAMES  # no extra keys (streamed_ids stays out), none missing
    assert all(row[k] not in (None, "") for k in PROVENANCE)
    assert row["artifact_hash"] == manifest.read(dirs[1])["content_hash"]
    assert row["status"] == "verified" and row["success"] and row["schema_version"] == schema.SCHEMA_VERSION
    assert row["weight_bytes"] == 42 and json.loads(row["runtime"]) == {"a": 1}
    assert row["read_bandwidth_bytes_per_s"] == 2e9 and row["request_index"] == 4
    assert json.loads(row["engine_metrics"]) == {"x": 1}
    assert not rows.request_row(context(dirs, loaded), result(error="too few tokens"))["success"]


def test_unverified_row_says_why_and_measures_nothing(dirs):
    row = rows.unverified_row(context(dirs), "no such library")
    assert set(row) == NAMES
    assert all(row[k] not in (None, "") for k in PROVENANCE)
    assert row["status"] == "unverified" and not row["success"] and row["error"] == "no such library"
    assert row["requested_output_tokens"] == 3 and row["output_ids"] == [] and row["runtime"] == "{}"
    assert row["latency_s"] is None and row["weight_bytes"] is None and row["engine_version"] is None
    assert rows.to_table([row]).num_rows == 1


def test_to_table_refuses_rows_of_another_shape(dirs):
    row = rows.unverified_row(context(dirs), "x")
    with pytest.raises(ValueError, match=r"unknown \['stray'\]"):
        rows.to_table([{**row, "stray": 1}])
    del row["error"]
    with pytest.raises(ValueError, match=r"missing \['error'\]"):
        rows.to_table([row])


def test_env_hash_without_a_rule_env_is_the_installed_package_list(dirs, monkeypatch):
    """Backend none (the driver's interpreter runs the job, LLMBENCH_ENV_HASH empty): the row still says which
    software ran, as a hash of the interpreter's installed distributions; a rule's hash is kept as given."""
    from llmbench import provenance

    monkeypatch.setenv("LLMBENCH_ENV_HASH", "")
    got = rows.unverified_row(context(dirs), "x")["env_hash"]
    assert got.startswith("installed:") and len(got) == len("installed:") + 64
    assert any(p.startswith("pyarrow==") for p in provenance.installed_packages())
    monkeypatch.setenv("LLMBENCH_ENV_HASH", "f" * 64)
    assert rows.unverified_row(context(dirs), "x")["env_hash"] == "f" * 64


def test_manifest_hashes_are_recorded(dirs):
    model, art = dirs
    row = rows.unverified_row(context(dirs), "x")
    assert row["model_manifest_sha256"] == manifest.read(model)["manifest_sha256"]
    assert row["artifact_manifest_sha256"] == manifest.read(art)["manifest_sha256"]


def test_job_refuses_a_model_changed_after_the_artifact_was_built(dirs, tmp_path):
    """The job re-hashes the model's files too, not only the artifact's: a model file edited in place (its
    manifest untouched, so the artifact's input_model_hash still matches the manifest) fails the job, naming
    the file, before anything is loaded."""
    model, art = dirs
    (model / "weights.bin").write_bytes(b"M" * 64)  # same size, other content
    with pytest.raises(manifest.StaleArtifactError, match=r"weights.bin: sha256"):
        bench.run_job(spec_for(model, art), tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_log_line_is_the_declared_subset():
    assert set(rows.LOGGED) <= NAMES
    assert list(rows.log_fields(result(prompt_id="p"))) == list(rows.LOGGED)


def test_generate_must_return_a_generation():
    class ReturnsList(StandInEngine):
        def generate(self, input_ids, max_new_tokens, on_token):
            return super().generate(input_ids, max_new_tokens, on_token).ids

    engine = ReturnsList()
    engine.load(None, {}, {})
    with pytest.raises(TypeError, match="must return llmbench.core.engine.Generation"):
        latency.measure(engine, [1, 2], 3)


def test_job_measures_the_placements_device_and_records_weights_as_run(dirs, tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(bench.roofline, "read_bandwidth",
                        lambda d, **kw: (measured.append(d) or 5e9, f"fake {d}"))
    monkeypatch.setattr(bench, "_has_cuda", lambda: True)
    monkeypatch.setattr(engines, "create", lambda name: StandInEngine())
    # llama.cpp's placement: GPU layers put the job on a GPU, so the GPU's bandwidth is the roofline's
    out = bench.run_job(spec_for(*dirs, options={"n_gpu_layers": -1}), tmp_path / "run.parquet", log=lambda m: None)
    assert measured == ["cuda", "cuda"]   # before the warm-ups and after the measured requests
    df = pd.read_parquet(out)
    assert len(df) == 10 and set(df.columns) == NAMES and df["success"].all()
    assert (df["weight_bytes"] == 600).all()  # as run, not as loaded
    assert [json.loads(m)["call"] for m in df["engine_metrics"]] == list(range(1, 11))
    assert df["bandwidth_method"].str.startswith("fake cuda; 2 probes").all() and df["run_id"].nunique() == 1

    monkeypatch.setattr(bench, "_has_cuda", lambda: False)
    bench.run_job(spec_for(*dirs, options={"n_gpu_layers": -1}), tmp_path / "run2.parquet", log=lambda m: None)
    assert measured[-1] == "cpu"  # no CUDA device for torch here: measured the CPU, and says so
    assert "torch sees no CUDA device" in pd.read_parquet(tmp_path / "run2.parquet")["bandwidth_method"][0]


def test_merge_and_quality_write_their_declared_schemas(dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.roofline, "read_bandwidth", lambda d, **kw: (5e9, "fake"))
    monkeypatch.setattr(engines, "create", lambda name: StandInEngine())
    run = bench.run_job(spec_for(*dirs), tmp_path / "run.parquet", log=lambda m: None)
    model, art = dirs
    qspec = {**spec_for(model, art), "quality": {"heldout_tokens": 64, "window": 32, "reference_artifact": "a",
                                                 "reference_variant": "v"}}
    qfile = quality.run_job(qspec, tmp_path / "q.parquet", log=lambda m: None)
    assert pq.read_schema(qfile).metadata[b"llmbench_table"] == b"quality"
    tables.merge([run], tmp_path / "tables", quality_files=[qfile],
                 quality_spec={"reference_artifact": "a", "reference_variant": "v", "agreement_tokens": 32})
    summary = pq.read_table(tmp_path / "tables/latency.parquet")
    assert summary.schema.equals(schema.SUMMARY.schema, check_metadata=False)
    assert summary.schema.metadata[b"llmbench_schema_version"] == str(schema.SUMMARY_VERSION).encode()
    line = summary.to_pylist()[0]
    assert line["requests"] == 9 and line["greedy_agreement"] == 1.0 and line["quality_by"] == "llamacpp / v (unknown)"
    assert line["quality_borrowed"] is False
    # decode bytes: weights as run (600) - the untied table but its gathered row (100 - 2) + KV at the mean
    # decode context (2 prompt ids + 3 new / 2 = 3.5 tokens, 10 bytes each)
    assert line["decode_bytes"] == 600 - 98 + 35 and line["roofline_tokens_per_s"] == 5e9 / 537
    assert line["weight_bytes"] == 600 and line["threads"] == 2 and line["ran_as"] == "stand-in"
    assert pq.read_schema(tmp_path / "tables/requests.parquet").equals(schema.SCHEMA, check_metadata=False)


class CountingEngine(StandInEngine):
    """The stand-in, counting its loads and recording the order of what the job asks of it."""

    loads = 0

    def load(self, artifact_dir, manifest, options):
        CountingEngine.loads += 1
        self.order = []
        return super().load(artifact_dir, manifest, options)

    def generate(self, input_ids, max_new_tokens, on_token):
        self.order.append("generate")
        return super().generate(input_ids, max_new_tokens, on_token)

    def score(self, ids):
        self.order.append("score")
        return super().score(ids)


def test_a_benchmark_job_scores_its_lines_quality_after_measuring_with_the_same_engine(dirs, tmp_path, monkeypatch):
    """The engine loads once: the measured requests first, then the held-out text scored by that engine (its
    quality row as rule quality would write it); a job that does not carry the line's quality writes an empty
    quality table, and its rows are the same either way."""
    monkeypatch.setattr(bench.roofline, "read_bandwidth", lambda d, **kw: (5e9, "fake"))
    made = []
    monkeypatch.setattr(engines, "create", lambda name: made.append(CountingEngine()) or made[-1])
    CountingEngine.loads = 0
    model, art = dirs
    q = {"heldout_tokens": 64, "window": 32, "reference_artifact": "a", "reference_variant": "v"}
    run = bench.run_job({**spec_for(model, art), "quality": q}, tmp_path / "run.parquet", log=lambda m: None,
                        quality_out=tmp_path / "run.quality.parquet")
    assert CountingEngine.loads == 1
    order = made[0].order
    assert order[: order.index("score")] == ["generate"] * 10 and set(order[order.index("score"):]) == {"score"}
    carried = pq.read_table(tmp_path / "run.quality.parquet")
    alone = quality.run_job({**spec_for(model, art), "quality": q}, tmp_path / "alone.parquet", log=lambda m: None)
    cols = ["perplexity", "scored_tokens", "argmax_ids", "scored_ids_sha256", "engine", "variant"]
    assert carried.select(cols).to_pylist() == pq.read_table(alone).select(cols).to_pylist()

    bench.run_job(spec_for(model, art), tmp_path / "other.parquet", log=lambda m: None,
                  quality_out=tmp_path / "other.quality.parquet")
    empty = pq.read_table(tmp_path / "other.quality.parquet")
    assert empty.num_rows == 0 and empty.schema.equals(schema.QUALITY.schema, check_metadata=False)
    assert pd.read_parquet(run)["output_ids"].map(list).tolist() == \
        pd.read_parquet(tmp_path / "other.parquet")["output_ids"].map(list).tolist()


def test_a_peak_rss_that_could_not_be_reset_says_it_is_the_lifetime_peak(monkeypatch):
    from llmbench.core import memory

    monkeypatch.setattr(memory, "_NOT_RESET", {})
    real = memory.Path

    class Refused(type(real())):
        def write_text(self, *a, **k):
            raise PermissionError("clear_refs not permitted")

    monkeypatch.setattr(memory, "Path", lambda p: Refused(p) if str(p).endswith("clear_refs") else real(p))
    memory.reset_peak_rss()
    assert memory.peak_rss_kind() == "process_lifetime_peak_rss (VmHWM not reset: PermissionError: clear_refs not permitted)"
    monkeypatch.setattr(memory, "Path", real)
    memory.reset_peak_rss()
    assert memory.peak_rss_kind() == "process_peak_rss"
