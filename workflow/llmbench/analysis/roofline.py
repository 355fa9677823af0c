"""The physical limit beside the measured figure: memory read bandwidth, measured in the job itself.

Batch-1 decoding reads every weight once per token, so ``bandwidth / weight_bytes`` is the token rate the
memory allows, and MBU (model bandwidth utilization) = weight_bytes × decode tok/s / bandwidth. Bandwidth
is measured on the card (or CPU) the job runs on, before the engine loads, never taken from a datasheet.
"""

from __future__ import annotations

import os
import time


def read_bandwidth(device: str, gib: float | None = None, reps: int = 10) -> tuple[float, str]:
    """(bytes/s, how it was measured): best of ``reps`` full reads (a sum) of a large buffer."""
    try:
        import torch
    except ImportError:
        torch = None
    if device.startswith("cuda"):
        n = int((gib or 4) * 2**30) // 2
        x = torch.ones(n, dtype=torch.float16, device=device)
        x.sum(); torch.cuda.synchronize()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter(); x.sum(); torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        del x
        torch.cuda.empty_cache()
        return n * 2 / best, f"torch fp16 sum over {n * 2 / 2**30:.0f} GiB on {device}, best of {reps}"
    size = int((gib or 1) * 2**30)
    if torch is not None:
        # every core of the machine: the physical limit, not the job's OMP_NUM_THREADS (Snakemake sets it to
        # the job's threads); the thread count is restored before the engine loads
        before, cores = torch.get_num_threads(), os.cpu_count() or 1
        torch.set_num_threads(cores)
        x = torch.ones(size // 4, dtype=torch.float32)
        how = f"torch fp32 sum over {size / 2**30:.0f} GiB, {cores} threads (all cores), best of {reps}"
    else:
        import numpy as np
        x = np.ones(size // 4, dtype=np.float32)
        how = f"numpy fp32 sum over {size / 2**30:.0f} GiB, best of {reps}"
    x.sum()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); x.sum()
        best = min(best, time.perf_counter() - t)
    del x
    if torch is not None:
        torch.set_num_threads(before)
    return size / best, how
