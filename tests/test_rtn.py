"""RTN W4A16 in the GPTQ v1 layout: the packed tensors stand for the rounded weights, and a build on saved
weights writes what vLLM's gptq loaders read (names, shapes, dtypes, quantization_config)."""

import json

import pytest

torch = pytest.importorskip("torch")

from llmbench.artifacts import rtn  # noqa: E402


def test_packed_tensors_unpack_to_the_nearest_level():
    torch.manual_seed(0)
    w = torch.randn(16, 64) * 0.02
    t = rtn.quantize_weight(w, group_size=32)
    assert t["qweight"].shape == (8, 16) and t["qweight"].dtype == torch.int32
    assert t["qzeros"].shape == (2, 2) and t["scales"].shape == (2, 16) and t["scales"].dtype == torch.float16
    deq = rtn.dequantize(t, 32)
    scale = t["scales"].float().t().repeat_interleave(32, dim=1)  # [out, in]
    # each weight lands within half a level of where it was (fp16 scales add a little)
    assert ((deq - w).abs() <= scale * 0.5 + 1e-4).all()
    # and on a level: (w / scale) is an integer in [-8, 7]
    levels = deq / scale
    assert torch.allclose(levels, levels.round(), atol=1e-3) and levels.min() >= -8 and levels.max() <= 7
    # the largest weight of a group sits on a level (sym: ±7.5 scale covers max|w|)
    assert (deq - w).abs().max() < (w.abs().max() * 2 / 15)


def test_group_size_must_divide_the_input():
    with pytest.raises(ValueError, match="group_size 48"):
        rtn.quantize_weight(torch.zeros(8, 64), group_size=48)


def test_build_writes_the_gptq_layout(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    model, out = tmp_path / "m", tmp_path / "a"
    model.mkdir(), out.mkdir()
    w = {"model.layers.0.self_attn.q_proj.weight": torch.randn(64, 64, dtype=torch.float16),
         "model.layers.0.mlp.down_proj.weight": torch.randn(64, 128, dtype=torch.float16),
         "model.embed_tokens.weight": torch.randn(10, 64, dtype=torch.float16),
         "lm_head.weight": torch.randn(10, 64, dtype=torch.float16)}
    save_file(w, str(model / "model.safetensors"))
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "dtype": "float16"}))
    facts = rtn.build(model, {"synthetic": None}, {"group_size": 32}, out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"] == {**facts["quantization_config"], "bits": 4, "group_size": 32,
                                          "quant_method": "gptq", "sym": True, "desc_act": False}
    assert facts["layers"] == {"quantized": 2, "kept": 2}
    with safe_open(str(next(out.glob("*.safetensors"))), framework="pt") as f:
        names = set(f.keys())
        assert f.get_tensor("model.layers.0.mlp.down_proj.qweight").shape == (16, 64)
        assert f.get_tensor("model.layers.0.mlp.down_proj.scales").shape == (4, 64)
        assert torch.equal(f.get_tensor("lm_head.weight"), w["lm_head.weight"])
    assert "model.layers.0.self_attn.q_proj.weight" not in names and "model.layers.0.self_attn.q_proj.g_idx" in names


def test_a_synthetic_model_without_saved_weights_is_refused(tmp_path):
    from llmbench.artifacts import SyntheticWeightsRefused

    with pytest.raises(SyntheticWeightsRefused, match="materialize: float16"):
        rtn.build(tmp_path, {"synthetic": {"preset": "llama-2-7b", "seed": 0}}, {"group_size": 128}, tmp_path)
