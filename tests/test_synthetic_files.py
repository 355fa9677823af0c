"""Synthetic models whose random weights are saved (materialize) and whose tokenizer is cut to the shape's
vocabulary (fit_tokenizer): what file-converting builders (gguf, ct2, rtn) need to run on a speed-only shape."""

import json

import pytest

from llmbench import models
from llmbench.artifacts import SyntheticWeightsRefused, refuse_synthetic

tokenizers = pytest.importorskip("tokenizers")

TEXT = ["the quick brown fox jumps over the lazy dog", "benchmarks measure tokens per second", "hello world"] * 50


def _bpe_tokenizer(path, vocab_size=400):
    from tokenizers import Tokenizer, decoders, models as tm, pre_tokenizers, trainers

    tok = Tokenizer(tm.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXT, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    return tok


def test_fit_tokenizer_keeps_every_text_encodable_below_the_vocab(tmp_path):
    from tokenizers import Tokenizer

    full = _bpe_tokenizer(tmp_path / "tok")
    n_full = full.get_vocab_size()
    assert n_full > 300
    facts = models.sources.fit_tokenizer(tmp_path / "tok" / "tokenizer.json", 300)
    cut = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    assert facts["vocab_before"] == n_full and facts["vocab_after"] == cut.get_vocab_size() == 300
    assert facts["merges_dropped"] > 0
    for text in ["the lazy dog jumps", "tokens per second, quickly!"]:
        ids = cut.encode(text).ids
        assert max(ids) < 300
        assert cut.decode(ids) == text
        # fewer merges: at least as many tokens as the full tokenizer gives
        assert len(ids) >= len(full.encode(text).ids)


def test_materialized_synthetic_model_saves_weights_and_builders_accept_it(tmp_path):
    pytest.importorskip("transformers")
    from safetensors import safe_open

    tok_dir = tmp_path / "tok"
    _bpe_tokenizer(tok_dir, vocab_size=49152 + 100)  # the tiny shape's vocab is 49152: cut it to that
    out = tmp_path / "model"
    m = models.fetch("tiny", {"source": "synthetic:tiny-llama", "seed": 3, "tokenizer_from": str(tok_dir),
                              "fit_tokenizer": True, "materialize": "float32"}, out)
    assert m["synthetic"]["materialized"]["dtype"] == "float32"
    shards = list(out.glob("*.safetensors"))
    assert shards
    with safe_open(str(shards[0]), framework="pt") as f:
        assert "model.layers.0.mlp.down_proj.weight" in f.keys()
    # file-converting methods take it, methods that need real weights still refuse it
    refuse_synthetic("gguf", m, "converts files", files_suffice=True)
    with pytest.raises(SyntheticWeightsRefused):
        refuse_synthetic("gptq", m, "calibrates on real activations")
    # a model drawn at load time is refused by both, and the message says how to save its weights
    with pytest.raises(SyntheticWeightsRefused, match="materialize: float16"):
        refuse_synthetic("gguf", {"synthetic": {"seed": 0}}, "converts files", files_suffice=True)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 49152
