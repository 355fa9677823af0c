"""vLLM's CPU wheel picks its op library by CPU; a quantized checkpoint its library cannot run is unverified."""

import json
from types import SimpleNamespace

from llmbench.engines import vllm as ve


def fake_torch(avx512: bool, bf16: bool, ops: set[str]):
    cpu = SimpleNamespace(_is_avx512_supported=lambda: avx512, _is_avx512_bf16_supported=lambda: bf16)
    return SimpleNamespace(cpu=cpu, ops=SimpleNamespace(_C=SimpleNamespace(**{o: object() for o in ops})))


PLATFORM = SimpleNamespace(import_kernels=lambda: None)


def test_op_library_follows_vllms_rule():
    assert ve.cpu_op_library(fake_torch(True, True, set())) == "_C"
    assert ve.cpu_op_library(fake_torch(True, False, set())) == "_C_AVX512"
    assert ve.cpu_op_library(fake_torch(False, False, set())) == "_C_AVX2"


def _artifact(tmp_path, quantized: bool):
    cfg = {"model_type": "llama"}
    if quantized:
        cfg["quantization_config"] = {"quant_method": "compressed-tensors"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


def test_quantized_checkpoint_without_the_wna16_kernel_is_a_reason(tmp_path):
    art = _artifact(tmp_path, quantized=True)
    why = ve.cpu_quant_kernel_problem(art, fake_torch(False, False, {"rms_norm"}), PLATFORM)
    assert why and "_C_AVX2" in why and "cpu_gemm_wna16" in why and "compressed-tensors" in why
    assert ve.cpu_quant_kernel_problem(art, fake_torch(True, False, {ve.WNA16_OP}), PLATFORM) is None


def test_dense_checkpoint_needs_no_quant_kernel(tmp_path):
    art = _artifact(tmp_path, quantized=False)
    assert ve.cpu_quant_kernel_problem(art, fake_torch(False, False, set()), PLATFORM) is None
