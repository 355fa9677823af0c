"""Host facts in every row: enough to see why two tables of one model differ between x86 machines."""

import importlib.metadata
import json
import os
import sys

import pytest

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


# what nvidia-smi printed on the H200 machine on 2026-12-02 (the banner's first lines)
H200_QUERY = "0, NVIDIA H200, 580.159.04, 143771 MiB\n"
H200_BANNER = """Wed Dec  2 04:37:42 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
"""


def test_host_records_affinity_ram_and_gpu_facts():
    h = json.loads(json.dumps(provenance.host()))
    assert h["cpu_affinity"] == sorted(os.sched_getaffinity(0))
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    assert h["ram_total_bytes"] == mem_kib * 1024
    assert set(h) >= {"nvidia", "torch_cuda", "cuda_visible_devices"}


def test_nvidia_smi_output_is_parsed():
    got = provenance.parse_nvidia_smi(H200_QUERY, H200_BANNER)
    assert got == {"gpus": [{"index": "0", "name": "NVIDIA H200", "driver": "580.159.04", "memory": "143771 MiB"}],
                   "driver_version": "580.159.04", "cuda_driver_version": "13.0"}


def test_gpu_facts_come_from_nvidia_smi_on_path_and_are_none_without_it(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nif [ \"$1\" ]; then printf '%s' \"$Q\"; else printf '%s' \"$B\"; fi\n")
    fake.chmod(0o755)
    monkeypatch.setenv("Q", H200_QUERY)
    monkeypatch.setenv("B", H200_BANNER)
    monkeypatch.setenv("PATH", str(tmp_path))
    provenance.nvidia.cache_clear()
    try:
        assert provenance.nvidia()["cuda_driver_version"] == "13.0"
        fake.unlink()
        provenance.nvidia.cache_clear()
        assert provenance.nvidia() is None
    finally:
        provenance.nvidia.cache_clear()


def test_torch_cuda_is_read_without_importing_torch(tmp_path, monkeypatch):
    import importlib.util

    pkg = tmp_path / "torch"
    pkg.mkdir()
    (pkg / "version.py").write_text("from typing import Optional\n__version__ = '2.11.0+cu130'\n"
                                    "cuda: Optional[str] = '13.0'\n")
    spec = importlib.util.spec_from_file_location("torch", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "torch" else None)
    assert provenance.torch_cuda() == "13.0"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert provenance.torch_cuda() == "no torch"


def test_installed_hash_follows_the_named_packages_and_their_dependencies_only():
    """backend none keys artifacts by what the env file's packages bring: pyyaml's closure is pyyaml; llmbench's
    includes its own dependencies (pandas, and numpy through pandas) but not pytest (an extra), and a name that is
    not installed is recorded as absent rather than dropped."""
    assert provenance.requirement_closure(["PyYAML"]) == [f"pyyaml=={importlib.metadata.version('pyyaml')}"]
    closure = provenance.requirement_closure(["llmbench"])
    names = {line.split("==")[0] for line in closure}
    assert {"llmbench", "pandas", "numpy", "pyyaml"} <= names and "pytest" not in names
    assert "no-such-dist-xyz==absent" in provenance.requirement_closure(["no_such.dist-XYZ"])
    assert provenance.installed_hash(["pyyaml"]) != provenance.installed_hash(["pyyaml", "pandas"])
    assert provenance.installed_hash(["pyyaml", "pandas"]) == provenance.installed_hash(["pandas", "PyYAML"])


def test_env_file_requirement_names_skip_options_and_name_the_harness(tmp_path):
    from llmbench.planning import envs

    f = tmp_path / "e.yaml"
    f.write_text("dependencies:\n  - python=3.11\n  - pip:\n      - --extra-index-url https://x/cpu\n"
                 "      - llama-cpp-python==0.3.36 --config-settings=cmake.define.X=OFF\n"
                 "      - Torch[extra] >= 2\n      - ..\n")
    assert envs.requirement_names(f) == ["llama-cpp-python", "Torch", "llmbench"]
