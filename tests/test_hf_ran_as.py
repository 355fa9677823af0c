"""HF's `ran_as` names what the Linear layers multiply with, not every parameter they hold: a
compressed-tensors layer decompressed on CPU keeps int64 `weight_shape` and float scales beside its dense
float `weight` (seen on the GPTQ artifact), and that is dense fp32, not "packed int64"."""

import pytest

torch = pytest.importorskip("torch")

from llmbench.engines.hf import _ran_as  # noqa: E402


class _Config:
    def __init__(self, quant):
        self.quantization_config = quant


class _Model(torch.nn.Module):
    def __init__(self, layer, quant=None):
        super().__init__()
        self.layer, self.config = layer, _Config(quant)


def test_a_decompressed_layer_with_int_shape_params_is_dense():
    layer = torch.nn.Linear(8, 4, bias=False)
    layer.weight_shape = torch.nn.Parameter(torch.tensor([4, 8]), requires_grad=False)
    layer.weight_scale = torch.nn.Parameter(torch.ones(4, 1), requires_grad=False)
    got = _ran_as(_Model(layer, {"quant_method": "compressed-tensors"}))
    assert got == "dense fp32 after decompression (compressed-tensors)"


def test_a_packed_layer_is_named_packed():
    layer = torch.nn.Linear(8, 4, bias=False)
    del layer.weight
    layer.weight_packed = torch.nn.Parameter(torch.zeros(4, 1, dtype=torch.int32), requires_grad=False)
    assert _ran_as(_Model(layer, {"quant_method": "compressed-tensors"})) == \
        "compressed-tensors packed int32 weights (Linear)"


def test_a_plain_model_is_dense_in_its_dtype():
    assert _ran_as(_Model(torch.nn.Linear(8, 4).to(torch.bfloat16))) == "dense bf16"


def test_a_bitsandbytes_layer_is_named_by_the_methods_value_not_its_enum():
    """transformers' BitsAndBytesConfig.to_dict() holds quant_method as a QuantizationMethod enum."""
    from transformers.utils.quantization_config import QuantizationMethod

    layer = torch.nn.Linear(8, 4, bias=False)
    layer.weight = torch.nn.Parameter(torch.zeros(16, 1, dtype=torch.uint8), requires_grad=False)
    got = _ran_as(_Model(layer, {"quant_method": QuantizationMethod.BITS_AND_BYTES}))
    assert got == "bitsandbytes packed uint8 weights (Linear)"
