"""Where a number came from: library versions, hardware, git commit. Imports no engine library itself."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(*dists: str) -> dict[str, str | None]:
    return {d: version_of(d) for d in dists}


@cache
def git_commit(start: str | os.PathLike = ".") -> str:
    """HEAD of the workflow's checkout, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=start, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=start,
                               capture_output=True, text=True, check=True)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# CPU features that decide which kernels an engine picks on x86 (bf16 matmuls, int8 dot products, AMX tiles),
# hence its speed and, for int8 engines such as CTranslate2, even its numbers. Two machines of one "x86_64"
# can differ in all of them (seen here: an AMD EPYC with avx512_bf16, an Intel Xeon without, an AMD EPYC with
# AVX2 only), so every row records which of them its host has.
KERNEL_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve", "bf16", "i8mm")


def _cpuinfo(text: str | None = None) -> str:
    if text is not None:
        return text
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name(cpuinfo: str | None = None) -> str:
    for line in _cpuinfo(cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The KERNEL_FLAGS this CPU has, in KERNEL_FLAGS order (x86 ``flags``, arm64 ``Features``)."""
    have: set[str] = set()
    for line in _cpuinfo(cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have |= set(value.split())
            break  # every core lists the same features
    return [f for f in KERNEL_FLAGS if f in have]


def host() -> dict[str, str | int | list[str]]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count() or 0,
        "env_prefix": sys.prefix,
    }
