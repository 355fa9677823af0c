"""Energy of a job's measured requests, from the hardware's own cumulative counters.

GPU: NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver
loaded, Volta and newer), read through the driver's ``libnvidia-ml.so.1`` with ctypes (no extra package), summed
over the GPUs the job claims. CPU: RAPL package counters (``/sys/class/powercap/intel-rapl:N/energy_uj``; AMD
CPUs expose them there too on recent kernels), wrap-around handled; they count the whole package, other
processes included. Where neither is readable the meter records why, and the energy columns stay empty.

One window covers all measured requests of the job (warm-ups excluded): the counters update every few tens of
milliseconds, so a single request's energy is never reported alone. An idle baseline is measured in the same
job, with the engine loaded, just before the warm-ups (``idle_s`` seconds); the summary subtracts idle power ×
window from the window's energy (analysis/tables.py).
"""

from __future__ import annotations

import ctypes
import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path

MIN_WINDOW_S = 1.0   # shorter windows than this are not reported: a counter update period is tens of ms
IDLE_S = 3.0


@dataclass(frozen=True)
class Energy:
    """The job's energy columns (core/schema.py COLUMNS: energy_*, idle_power_w)."""

    energy_j: float | None = None
    energy_window_s: float | None = None
    idle_power_w: float | None = None
    energy_method: str = ""
    energy_note: str = ""


class _Nvml:
    def __init__(self, cuda_indices: list[int]):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2() != 0:
            raise OSError("nvmlInit_v2 failed")
        self.handles = [self._handle(i) for i in cuda_indices]
        self.method = (f"NVML nvmlDeviceGetTotalEnergyConsumption, sum over {len(self.handles)} GPU(s) "
                       f"(CUDA indices {cuda_indices})")

    def _handle(self, cuda_index: int):
        handle = ctypes.c_void_p()
        uuid = _cuda_uuid(cuda_index)
        if uuid is not None:
            rc = self.lib.nvmlDeviceGetHandleByUUID(ctypes.c_char_p(uuid.encode()), ctypes.byref(handle))
        else:  # no torch: CUDA index = NVML index unless CUDA_VISIBLE_DEVICES renumbers
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
            index = int(visible.split(",")[cuda_index]) if visible.replace(",", "").isdigit() else cuda_index
            rc = self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle))
        if rc != 0:
            raise OSError(f"NVML handle of CUDA device {cuda_index}: error {rc}")
        return handle

    def read_j(self) -> float:
        total = 0
        for h in self.handles:
            mj = ctypes.c_ulonglong()
            rc = self.lib.nvmlDeviceGetTotalEnergyConsumption(h, ctypes.byref(mj))
            if rc != 0:
                raise OSError(f"nvmlDeviceGetTotalEnergyConsumption: error {rc} (not supported before Volta)")
            total += mj.value
        return total / 1e3


def _cuda_uuid(index: int) -> str | None:
    try:
        import torch
        return "GPU-" + str(torch.cuda.get_device_properties(index).uuid)
    except Exception:  # noqa: BLE001 - no torch or an old one: fall back to the index
        return None


class _Rapl:
    def __init__(self, root: str = "/sys/class/powercap"):
        self.zones = sorted(p for p in glob.glob(f"{root}/intel-rapl:*") if p.count(":") == 1)
        if not self.zones:
            raise OSError(f"no RAPL package zone under {root}" if Path(root).exists()
                          else f"{root} does not exist (a VM or container without powercap)")
        self.ranges = [int(Path(z, "max_energy_range_uj").read_text()) for z in self.zones]
        self.last = self._raw()
        self.total_uj = 0
        names = [Path(z, "name").read_text().strip() for z in self.zones]
        self.method = f"RAPL {', '.join(names)} ({', '.join(self.zones)}): whole packages, other processes included"

    def _raw(self) -> list[int]:
        return [int(Path(z, "energy_uj").read_text()) for z in self.zones]

    def read_j(self) -> float:
        now = self._raw()
        for i, (a, b) in enumerate(zip(self.last, now)):
            self.total_uj += b - a if b >= a else b + self.ranges[i] - a   # one wrap between reads
        self.last = now
        return self.total_uj / 1e6


class Meter:
    """Reads one counter (NVML or RAPL) or none; :meth:`result` gives the job's columns."""

    def __init__(self, device: str, gpus: int = 1, rapl_root: str = "/sys/class/powercap"):
        self.counter, self.why_not = None, ""
        try:
            if device.startswith("cuda"):
                self.counter = _Nvml(list(range(max(1, gpus))))
            else:
                self.counter = _Rapl(rapl_root)
        except (OSError, ValueError, AttributeError) as e:
            kind = "NVML" if device.startswith("cuda") else "RAPL"
            self.why_not = f"{kind} not readable here: {e}"
        self.idle_w: float | None = None
        self.start: tuple[float, float] | None = None
        self.window: tuple[float, float] | None = None

    def _read(self) -> tuple[float, float] | None:
        """(now, joules so far); None when there is no counter. A counter that fails to read is dropped with
        the reason: energy is a column, never a reason for the benchmark job to fail."""
        if self.counter is None:
            return None
        try:
            return time.perf_counter(), self.counter.read_j()
        except (OSError, ValueError) as e:
            self.counter, self.why_not = None, f"the energy counter failed to read: {e}"
            return None

    def measure_idle(self, seconds: float = IDLE_S) -> None:
        """Idle power over ``seconds`` with nothing running (call with the engine loaded, before requests)."""
        first = self._read()
        if first is None:
            return
        time.sleep(seconds)
        last = self._read()
        if last is not None:
            self.idle_w = (last[1] - first[1]) / (last[0] - first[0])

    def begin(self) -> None:
        self.start = self._read()

    def end(self) -> None:
        last = self._read() if self.start is not None else None
        if last is not None:
            self.window = (last[0] - self.start[0], last[1] - self.start[1])

    def result(self) -> Energy:
        if self.counter is None:
            return Energy(energy_note=self.why_not)
        if self.window is None:
            return Energy(energy_method=self.counter.method, energy_note="no measured window (no measured request)")
        seconds, joules = self.window
        if seconds < MIN_WINDOW_S:
            return Energy(energy_method=self.counter.method, energy_note=(
                f"measured window {seconds:.3f} s is shorter than {MIN_WINDOW_S:g} s: too close to the counter's "
                "update period to report"))
        return Energy(energy_j=joules, energy_window_s=seconds, idle_power_w=self.idle_w,
                      energy_method=self.counter.method,
                      energy_note="" if self.idle_w is not None else "no idle baseline measured")
