"""What else used the machine while a job measured: CPU time of processes outside the job's process tree, steal
time and load average (from /proc), and on CUDA the device's other processes, clocks and throttle reasons (NVML,
through pynvml where it is installed; where it is not, the row says NVML was not read).

One window spans the job's measured requests (as core/energy.py's). Outside CPU = the whole machine's busy CPU
time (/proc/stat: user, nice, system, irq, softirq) over the window minus the CPU time of the job's own process
tree (/proc/<pid>/stat utime + stime + the reaped children's cutime + cstime, for the job process and every
descendant), in cores (CPU-seconds per second). A line is NOISY when others used more than NOISY_OUTSIDE_CORES
(outside CPU + steal), or, on a GPU, when another process held the device or the clocks were slowed by heat or
hardware (throttle reasons). NOISY_OUTSIDE_CORES comes from measurement on the 2-core AMD EPYC VM (KVM) this was
written on, 2026-12-08; the threshold, its figures and the verdict are in core/interference.py (the merge judges
lines with them too).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from llmbench.core.interference import NOISY_OUTSIDE_CORES, THRESHOLD_BASIS, verdict  # noqa: F401 - the job's
#   log judges with the merge's verdict (core/interference.py: the threshold, its measurement, the verdict)

NAMED_CORES = 0.05   # an outside process is named when it used at least this much (the quiet machine's agents: <0.02)
_BUSY = ("user", "nice", "system", "irq", "softirq")
_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# nvmlClocksEventReasons (nvml.h): the ones that slow a GPU for a cause outside the benchmark's own work
_GPU_SLOWDOWNS = {0x8: "hardware slowdown", 0x20: "software thermal slowdown", 0x40: "hardware thermal slowdown",
                  0x80: "hardware power brake"}
_GPU_REASONS = {0x1: "idle", 0x2: "applications clocks setting", 0x4: "software power cap", 0x10: "sync boost",
                0x100: "display clock setting", **_GPU_SLOWDOWNS}


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def _cpu_totals(text: str) -> dict[str, int]:
    """The aggregate 'cpu' line of /proc/stat as {field: jiffies}."""
    first = text.splitlines()[0].split()
    return dict(zip(_STAT_FIELDS, map(int, first[1:1 + len(_STAT_FIELDS)])))


def _processes() -> dict[int, tuple[int, int, int, str]]:
    """{pid: (parent pid, utime + stime, cutime + cstime (reaped children), command name)} in ticks, of every
    readable process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:   # gone since listdir, or not ours to read
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        rest = text[text.rindex(")") + 2:].split()
        out[int(entry)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]), name)
    return out


def tree(processes: dict[int, tuple], root: int) -> set[int]:
    """``root`` and all its descendants among ``processes``."""
    children: dict[int, list[int]] = {}
    for pid, (parent, *_) in processes.items():
        children.setdefault(parent, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


@dataclass
class _Sample:
    t: float
    cpu: dict[str, int]
    processes: dict[int, tuple[int, int, int, str]]
    loadavg: float


def _sample() -> _Sample:
    with open("/proc/stat") as f:
        cpu = _cpu_totals(f.read())
    processes = _processes()
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    return _Sample(time.monotonic(), cpu, processes, load)


def _used(begin: _Sample, end: _Sample, pid: int, reaped: bool) -> int:
    """Ticks ``pid`` used between the samples: its own, plus its reaped children's when ``reaped``."""
    def total(p):
        return p[1] + (p[2] if reaped else 0)
    return total(end.processes[pid]) - (total(begin.processes[pid]) if pid in begin.processes else 0)


def cpu_figures(begin: _Sample, end: _Sample, root: int) -> dict:
    """The window's CPU figures: cores used by the job's tree (its reaped children included), by everything else
    (the machine's busy time minus the tree's: processes that ended within the window count too), steal; the
    busiest other processes by their own time (a parent's reaped children are not named as the parent)."""
    hz, seconds = _ticks(), end.t - begin.t
    mine = tree(end.processes, root) | (tree(begin.processes, root) & end.processes.keys())
    job = sum(_used(begin, end, pid, True) for pid in mine) / hz
    busy = sum(end.cpu[k] - begin.cpu[k] for k in _BUSY) / hz
    steal = (end.cpu["steal"] - begin.cpu["steal"]) / hz
    others = sorted(((_used(begin, end, pid, False) / hz, pid) for pid in end.processes if pid not in mine),
                    reverse=True)[:3]
    return {
        "window_s": round(seconds, 3), "cpus": os.cpu_count(),
        "job_cores": round(job / seconds, 3),
        "outside_cores": round(max(0.0, busy - job) / seconds, 3),
        "steal_cores": round(steal / seconds, 3),
        "loadavg_1m": [begin.loadavg, end.loadavg],
        "top_outside": [f"{end.processes[pid][3]} (pid {pid}) {s / seconds:.2f} cores" for s, pid in others
                        if s / seconds >= NAMED_CORES],
    }


class _Gpu:
    """NVML through pynvml: the device's processes, SM clock and clock-event (throttle) reasons, polled."""

    def __init__(self, indices: list[int]):
        import pynvml  # absent: the caller records that NVML was not read

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self.reasons, self.others, self.clocks = 0, set(), []

    def poll(self, mine: set[int]) -> None:
        n = self.nvml
        for h in self.handles:
            reasons = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
                n.nvmlDeviceGetCurrentClocksThrottleReasons
            self.reasons |= int(reasons(h))
            self.clocks.append(int(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)))
            for p in [*n.nvmlDeviceGetComputeRunningProcesses(h), *n.nvmlDeviceGetGraphicsRunningProcesses(h)]:
                if p.pid not in mine:
                    self.others.add(p.pid)

    def figures(self) -> dict:
        max_sm = [int(self.nvml.nvmlDeviceGetMaxClockInfo(h, self.nvml.NVML_CLOCK_SM)) for h in self.handles]
        return {"gpu_other_pids": sorted(self.others),
                "gpu_sm_clock_mhz": [min(self.clocks), max(self.clocks)] if self.clocks else [],
                "gpu_sm_clock_max_mhz": max_sm,
                "gpu_clock_reasons": [v for k, v in _GPU_REASONS.items() if self.reasons & k],
                "gpu_slowdowns": [v for k, v in _GPU_SLOWDOWNS.items() if self.reasons & k]}


@dataclass
class Monitor:
    """begin() before the first measured request, poll() after each, end() after the last; figures() then."""

    device: str = "cpu"
    gpus: int = 1
    root: int = field(default_factory=os.getpid)

    def __post_init__(self):
        self.gpu, self.gpu_note = None, ""
        if self.device.startswith("cuda"):
            try:
                self.gpu = _Gpu(list(range(max(1, self.gpus))))
            except Exception as e:  # noqa: BLE001 - no pynvml, no driver: recorded, never guessed
                self.gpu_note = f"NVML not read ({type(e).__name__}: {e})"
        self.begin_sample = self.end_sample = None

    def _mine(self) -> set[int]:
        return tree(_processes(), self.root)

    def begin(self) -> None:
        self.begin_sample = _sample()
        self.poll()

    def poll(self) -> None:
        if self.gpu is not None:
            try:
                self.gpu.poll(self._mine())
            except Exception as e:  # noqa: BLE001 - a failing read is recorded, the benchmark goes on
                self.gpu, self.gpu_note = None, f"NVML read failed ({type(e).__name__}: {e})"

    def end(self) -> None:
        self.poll()
        self.end_sample = _sample()

    def figures(self) -> dict:
        if self.begin_sample is None or self.end_sample is None:
            return {}
        out = cpu_figures(self.begin_sample, self.end_sample, self.root)
        if self.gpu is not None:
            out.update(self.gpu.figures())
        elif self.device.startswith("cuda"):
            out["gpu_note"] = self.gpu_note
        return out


def to_json(figures: dict) -> str:
    return json.dumps(figures, sort_keys=True)
