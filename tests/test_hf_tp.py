"""HF tensor parallel (engine option tp_size) through the real workflow on this CPU: two gloo ranks started by
torchrun (the benchmark rule's launcher) on the tiny-llama synthetic shape, against the TP=1 line on the same
weights (materialized to files), and a second synthetic model drawn per shard. Few prompts, 4 new tokens."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake, write_yaml

pytestmark = pytest.mark.workflow
tokenizers = pytest.importorskip("tokenizers")

NEW = 4
TEXT = ["the quick brown fox jumps over the lazy dog", "tensor parallel ranks share every forward", "hello"] * 40


def _tokenizer(path):
    """A small byte-level BPE tokenizer (ids < the tiny shape's vocab), so no model needs fetching."""
    from tokenizers import Tokenizer, decoders, models as tm, pre_tokenizers, trainers

    tok = Tokenizer(tm.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXT, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return path


def _config(tok_dir, prompts) -> dict:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    tiny = {"source": "synthetic:tiny-llama", "seed": 1, "tokenizer_from": str(tok_dir)}
    cfg["models"] = {"tiny": {**tiny, "materialize": "float32"}, "tiny-drawn": tiny}
    cfg["artifacts"] = {"ref": {"method": "reference", "params": {"dtype": "float32"}}}
    base = {"device": "cpu", "dtype": "float32", "num_threads": 1}
    cfg["variants"] = {"hf-tp1": {"engine": "hf", "options": base},
                       "hf-tp2": {"engine": "hf", "options": {**base, "tp_size": 2}}}
    cfg["scenarios"] = {"latency": {"kind": "latency", "prompts": str(prompts), "max_new_tokens": NEW, "warmup": 1,
                                    "repeats": 1}}
    cfg["benchmarks"] = [{"models": ["tiny"], "artifacts": ["ref"], "variants": ["hf-tp1", "hf-tp2"],
                          "scenarios": ["latency"]},
                         {"models": ["tiny-drawn"], "artifacts": ["ref"], "variants": ["hf-tp2"],
                          "scenarios": ["latency"]}]
    cfg.pop("serving", None)
    cfg.pop("quality", None)  # synthetic models get no quality figure
    cfg["software_envs"] = {"backend": "none"}
    return cfg


@pytest.fixture(scope="module")
def tp_run(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("tp"))
    prompts = wd / "config/prompts/tp.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in
                               enumerate(["the quick brown fox", "tensor parallel ranks share every forward"])))
    write_yaml(wd / "config/config.yaml", _config(_tokenizer(wd / "tok"), prompts))
    snakemake(wd, timeout=900)
    return wd


def _runs(wd, model, variant):
    df = pd.read_parquet(wd / f"results/runs/{model}/ref/{variant}/latency.parquet")
    return df, [yaml.safe_load(r) for r in df["runtime"]]


def test_two_gloo_ranks_run_through_the_workflow_with_exact_counts_and_tp1s_tokens(tp_run):
    tp2, runtime = _runs(tp_run, "tiny", "hf-tp2")
    tp1, _ = _runs(tp_run, "tiny", "hf-tp1")
    assert len(tp2) == 3 and tp2["success"].all()       # 1 warm-up + 2 measured: only rank 0 wrote rows
    assert (tp2["output_tokens"] == NEW).all() and (tp2["streamed_tokens"] == NEW).all()
    tp = runtime[0]["tensor_parallel"]
    assert (tp["degree"], tp["world_size"], tp["backend"], tp["mesh_device"]) == (2, 2, "gloo", "cpu")
    assert tp["sharded_parameters"] > 0 and runtime[0]["torch_threads"] == 1
    assert _runs(tp_run, "tiny", "hf-tp1")[1][0]["tensor_parallel"] is None
    # greedy on the same weights (materialized files, each rank loading its shard): the same tokens as TP=1
    key = ["request_index", "prompt_id"]
    merged = tp1.merge(tp2, on=key, suffixes=("_1", "_2"))
    assert len(merged) == 3
    assert all(list(a) == list(b) for a, b in zip(merged["output_ids_1"], merged["output_ids_2"]))
    assert (merged["input_tokens_1"] == merged["input_tokens_2"]).all()
    # weights as run: every shard together, the same bytes as the single process's
    assert (tp2["weight_bytes"] == tp1["weight_bytes"]).all()
    log = (tp_run / "logs/benchmark/tiny/ref/hf-tp2/latency.log").read_text()
    assert log.count("row {") == 3                        # rank 1 logged no rows
    summary = pd.read_parquet(tp_run / "results/tables/latency.parquet")
    assert set(summary["variant"]) == {"hf-tp1", "hf-tp2"} and (summary["avg_output_tokens"] == NEW).all()


def test_a_synthetic_model_is_drawn_per_shard(tp_run):
    df, runtime = _runs(tp_run, "tiny-drawn", "hf-tp2")
    assert df["success"].all() and (df["output_tokens"] == NEW).all()
    tp = runtime[0]["tensor_parallel"]
    assert (tp["degree"], tp["world_size"]) == (2, 2) and runtime[0]["synthetic_weights"]
    # rank 0 holds about half of the parameters (the sharded matrices halved, the norms whole)
    cfg = json.loads((tp_run / "resources/models/tiny-drawn/config.json").read_text())
    total = int(df["weight_bytes"].iloc[0]) // 4          # float32
    assert total // 2 <= tp["rank0_local_parameters"] < total // 2 + 10 * cfg["hidden_size"]
