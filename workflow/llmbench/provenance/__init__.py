"""Where a number came from: library versions, hardware, git commit. Imports no engine library itself."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(*dists: str) -> dict[str, str | None]:
    return {d: version_of(d) for d in dists}


def installed_packages() -> list[str]:
    """``name==version`` of every distribution this interpreter can import, sorted, duplicates removed."""
    found = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.add(f"{name.lower().replace('_', '-')}=={dist.version}")
    return sorted(found)


def requirement_closure(names) -> list[str]:
    """``name==version`` of the installed distributions the named ones need, themselves included, following
    each distribution's unconditional requirements (extras not followed, environment markers evaluated here);
    a name that is not installed is listed as ``name==absent``. Sorted."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    todo = [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except Exception:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return sorted(f"{n}=={v}" for n, v in found.items())


def installed_hash(names) -> str:
    """``installed:`` + the sha256 of ``requirement_closure(names)``: what the driver's interpreter brings to a
    job of an env file naming these packages (backend none). Installing an unrelated package (a plugin) leaves
    it unchanged; upgrading one the job imports, directly or through a dependency, changes it."""
    return "installed:" + hashlib.sha256("\n".join(requirement_closure(names)).encode()).hexdigest()


def env_hash() -> str:
    """The job's software env: $LLMBENCH_ENV_HASH (the rule's requirements hash of the env file) when set,
    else (backend none: the driver's interpreter runs the job) ``installed:`` + the sha256 of this
    interpreter's installed package list, so a row always says which software made it."""
    given = os.environ.get("LLMBENCH_ENV_HASH", "")
    if given:
        return given
    return "installed:" + hashlib.sha256("\n".join(installed_packages()).encode()).hexdigest()


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


def ram_total_bytes() -> int | None:
    """Physical memory of the host (sysconf pages × page size); None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_affinity() -> list[int] | None:
    """The CPUs this process may run on (what a job really had, whatever os.cpu_count says); None where the
    platform has no sched_getaffinity."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def parse_nvidia_smi(query_csv: str, banner: str) -> dict[str, Any]:
    """GPU facts from ``nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader``
    and from plain ``nvidia-smi`` (whose banner names the CUDA version the driver supports). Pure."""
    gpus = []
    for line in query_csv.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            gpus.append({"index": parts[0], "name": parts[1], "driver": parts[2], "memory": parts[3]})
    m = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
    return {"gpus": gpus, "driver_version": gpus[0]["driver"] if gpus else None,
            "cuda_driver_version": m.group(1) if m else None}


@cache
def nvidia() -> dict[str, Any] | None:
    """nvidia-smi's view of the host's GPUs, driver and CUDA version; None where nvidia-smi is absent or
    fails (no NVIDIA GPU or driver here), with the reason under ``error`` when it exists but fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        query = subprocess.run(["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True)
        banner = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"nvidia-smi failed: {str(e)[:300]}"}
    return parse_nvidia_smi(query.stdout, banner.stdout)


def torch_cuda() -> str | None:
    """The CUDA version this env's torch was built for (``torch.version.cuda``; None: a CPU build) read from
    torch/version.py without importing torch; ``"no torch"`` where the env has none."""
    import importlib.util

    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.version.cuda
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "no torch"
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    m = re.search(r"^cuda\s*(?::[^=]*)?=\s*'([^']*)'", path.read_text(), re.MULTILINE) if path.exists() else None
    return m.group(1) if m else None


def host() -> dict[str, Any]:
    """The host facts every row records (its ``host`` column): interpreter, platform, CPU, this process's CPU
    affinity, RAM, the SLURM job id where there is one, GPUs (nvidia-smi: driver and CUDA version; None without an NVIDIA driver) and torch's CUDA."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count() or 0,
        "cpu_affinity": cpu_affinity(),
        "ram_total_bytes": ram_total_bytes(),
        "nvidia": nvidia(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # set where the job ran under SLURM (profiles/slurm)
        "torch_cuda": torch_cuda(),
        "env_prefix": sys.prefix,
    }
