"""Host facts in every row: enough to see why two tables of one model differ between x86 machines."""

import json

from llmbench import provenance

AVX512_BF16 = """processor\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16
processor\t: 1
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16
"""
AVX2_ONLY = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma f16c\n"
AMX = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t: avx2 fma avx512f avx512_vnni avx_vnni amx_bf16 amx_tile amx_int8\n"


def test_cpu_flags_name_the_kernel_features_a_cpu_has():
    assert provenance.cpu_flags(AVX512_BF16) == ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
                                                 "avx512_bf16", "avx512_fp16"]
    assert provenance.cpu_flags(AVX2_ONLY) == ["avx2", "fma", "f16c"]
    assert {"amx_tile", "amx_int8", "amx_bf16", "avx_vnni"} <= set(provenance.cpu_flags(AMX))
    assert "avx512_bf16" not in provenance.cpu_flags(AMX)
    assert provenance.cpu_name(AMX) == "Intel(R) Xeon(R) Platinum 8480+"
    assert provenance.cpu_flags("") == []


def test_host_facts_are_json_and_carry_this_machines_flags():
    h = json.loads(json.dumps(provenance.host()))
    assert h["cpu_flags"] == provenance.cpu_flags()
    assert set(h) >= {"python", "platform", "cpu", "cpu_flags", "cpu_count", "env_prefix"}
