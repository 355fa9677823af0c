"""Datasheet peaks of common accelerators: memory bandwidth and dense FLOP/s per dtype, each with its source.

A card is found by the exact name torch and nvidia-smi give it (``torch.cuda.get_device_name``), so an H200 NVL
is never read as an H200 SXM. FLOP/s are **dense** (no 2:4 sparsity): where a datasheet prints only the sparse
figure (footnote "with sparsity"), the table holds half of it and says so in ``source``. ``fp32`` is the
non-tensor-core FP32 rate (torch's default fp32 matmul does not use TF32); ``tf32`` is listed apart.

A figure measured in the job (read bandwidth, roofline.py) always stands beside these; the report names which
is which ("of datasheet" vs "of measured").
"""

from __future__ import annotations

from dataclasses import dataclass, field

T = 1e12


@dataclass(frozen=True)
class Card:
    name: str
    bandwidth_bytes_per_s: float
    flops_per_s: dict[str, float] = field(default_factory=dict)   # dtype key -> dense FLOP/s
    source: str = ""


_HOPPER_SXM = {"fp16": 989 * T, "bf16": 989 * T, "fp8": 1979 * T, "tf32": 494.5 * T, "fp32": 67 * T}
_HOPPER_SXM_SRC = ("dense = half the datasheet's 'with sparsity' tensor figures (FP16/BF16 1,979, FP8 3,958, "
                   "TF32 989 TFLOPS); FP32 67 TFLOPS")
_A100 = {"fp16": 312 * T, "bf16": 312 * T, "tf32": 156 * T, "fp32": 19.5 * T}
_A100_SRC = "NVIDIA A100 Tensor Core GPU datasheet: FP16/BF16 tensor 312 TFLOPS dense (624 with sparsity), TF32 156, FP32 19.5"

CARDS: dict[str, Card] = {c.name.lower(): c for c in [
    Card("NVIDIA H200", 4.8 * T, _HOPPER_SXM,
         "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM): 4.8 TB/s HBM3e; " + _HOPPER_SXM_SRC),
    Card("NVIDIA H100 80GB HBM3", 3.35 * T, _HOPPER_SXM,
         "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM): 3.35 TB/s HBM3; " + _HOPPER_SXM_SRC),
    Card("NVIDIA H100 PCIe", 2.0 * T,
         {"fp16": 756.5 * T, "bf16": 756.5 * T, "fp8": 1513 * T, "tf32": 378 * T, "fp32": 51 * T},
         "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe): 2 TB/s HBM2e; dense = half the 'with sparsity' "
         "figures (FP16/BF16 1,513, FP8 3,026, TF32 756 TFLOPS); FP32 51 TFLOPS"),
    Card("NVIDIA A100-SXM4-80GB", 2.039 * T, _A100, "A100 80GB SXM: 2,039 GB/s HBM2e; " + _A100_SRC),
    Card("NVIDIA A100 80GB PCIe", 1.935 * T, _A100, "A100 80GB PCIe: 1,935 GB/s HBM2e; " + _A100_SRC),
    Card("NVIDIA A100-SXM4-40GB", 1.555 * T, _A100, "A100 40GB SXM: 1,555 GB/s HBM2; " + _A100_SRC),
    Card("NVIDIA A100-PCIE-40GB", 1.555 * T, _A100, "A100 40GB PCIe: 1,555 GB/s HBM2; " + _A100_SRC),
    Card("NVIDIA RTX A6000", 768e9, {"fp16": 154.8 * T, "bf16": 154.8 * T, "tf32": 77.4 * T, "fp32": 38.7 * T},
         "NVIDIA RTX A6000 datasheet: 768 GB/s GDDR6, FP32 38.7 TFLOPS, tensor 309.7 TFLOPS with sparsity "
         "(FP16/BF16, FP32 accumulate; dense = half), TF32 154.8 with sparsity"),
    Card("NVIDIA L4", 300e9, {"fp16": 121 * T, "bf16": 121 * T, "fp8": 242.5 * T, "tf32": 60 * T, "fp32": 30.3 * T},
         "NVIDIA L4 Tensor Core GPU datasheet: 300 GB/s GDDR6, FP32 30.3 TFLOPS; dense = half the 'with "
         "sparsity' figures (FP16/BF16 242, FP8 485, TF32 120 TFLOPS)"),
    Card("NVIDIA L40S", 864e9, {"fp16": 362.05 * T, "bf16": 362.05 * T, "fp8": 733 * T, "tf32": 183 * T,
                                "fp32": 91.6 * T},
         "NVIDIA L40S datasheet: 864 GB/s GDDR6, FP32 91.6 TFLOPS, BF16/FP16 tensor 362.05 TFLOPS dense "
         "(733 with sparsity), FP8 733 dense (1,466), TF32 183 dense (366)"),
]}


def card(device_name: str | None) -> Card | None:
    """The card of that exact device name (case and surrounding spaces ignored), else None."""
    return CARDS.get(device_name.strip().lower()) if isinstance(device_name, str) else None


def dtype_key(dtype: str | None) -> str | None:
    """``torch.bfloat16`` / ``bfloat16`` / ``bf16`` -> ``bf16``; the keys of Card.flops_per_s; None if unknown."""
    d = dtype.lower().replace("torch.", "") if isinstance(dtype, str) else ""
    for key, names in (("bf16", ("bfloat16", "bf16")), ("fp16", ("float16", "fp16", "half")),
                       ("fp8", ("float8", "fp8")), ("fp32", ("float32", "fp32", "float"))):
        if d in names or (key == "fp8" and d.startswith("float8")):
            return key
    return None


def peak_flops(device_name: str | None, dtype: str | None) -> tuple[float, str] | None:
    """(dense FLOP/s of that card in that dtype, its source), else None (card or dtype not in the table)."""
    c, key = card(device_name), dtype_key(dtype)
    if c is None or key is None or key not in c.flops_per_s:
        return None
    return c.flops_per_s[key], f"{c.source} [{key}]"


# GPU memory from the same datasheets, in GB (10^9 bytes) as they print it; what a driver reports is a little
# more (an H200 shows 143771 MiB = 150.8 GB), so a fit check against these errs on the safe side.
MEMORY_GB = {"NVIDIA H200": 141, "NVIDIA H100 80GB HBM3": 80, "NVIDIA H100 PCIe": 80, "NVIDIA A100-SXM4-80GB": 80,
             "NVIDIA A100 80GB PCIe": 80, "NVIDIA A100-SXM4-40GB": 40, "NVIDIA A100-PCIE-40GB": 40,
             "NVIDIA RTX A6000": 48, "NVIDIA L4": 24, "NVIDIA L40S": 48}


def memory_bytes(device_name: str | None) -> float | None:
    """Datasheet memory of that exact card, in bytes; None for a card not in the table."""
    c = card(device_name)
    return MEMORY_GB[c.name] * 1e9 if c else None


def cuda_problem() -> str | None:
    """Why no CUDA GPU is usable here (nvidia-smi missing or listing none), else None."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return "no CUDA GPU here (nvidia-smi is not on PATH)"
    import subprocess

    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    return None if listed else "no CUDA GPU here (nvidia-smi -L lists none)"
