"""The read-bandwidth probe of a benchmark job, with the threads and CPUs the engine really computed on.

The probe runs twice: after the engine loaded (so its threads and CPUs are known from ``Loaded``) and before
the warm-ups, then again after the measured requests; both figures are kept, their median is the job's figure
and their spread is reported. The threads are ``Loaded.threads`` (read back from the engine), the CPUs those its
compute threads were seen on (vLLM's workers: runtime.workers thread_cpus) or else the job process's affinity.
Where the engine did not report its threads, the probe uses the placement's (the options') and the line is
flagged: probe and run may then differ. On CUDA the probe reads the GPU (the second one with a smaller buffer,
next to the loaded engine; out of memory there is recorded, not fatal).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

from llmbench.core import roofline
from llmbench.core.engine import Loaded, Placement


def engine_cpus(loaded: Loaded) -> tuple[list[int], str]:
    """(the CPUs the engine computed on, where that was read)."""
    workers = loaded.runtime.get("workers") if isinstance(loaded.runtime, dict) else None
    seen = sorted({int(c) for w in workers or [] if isinstance(w, dict)
                   for c in (w.get("thread_cpus") or w.get("cpu_affinity") or [])})
    if seen:
        return seen, "the engine's workers (runtime.workers)"
    return sorted(os.sched_getaffinity(0)), "the job process's affinity"


def _probe_on(cpus: list[int], threads: int) -> tuple[float, str]:
    """roofline.read_bandwidth('cpu') with ``threads`` on ``cpus``: in this process when they are its CPUs, else
    in a child process pinned to them (a running OpenMP pool cannot be moved)."""
    if set(cpus) == os.sched_getaffinity(0):
        return roofline.read_bandwidth("cpu", threads=threads)
    code = ("import json; from llmbench.core import roofline; "
            f"print(json.dumps(roofline.read_bandwidth('cpu', threads={threads})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600,
                         preexec_fn=lambda: os.sched_setaffinity(0, cpus)).stdout
    bandwidth, how = json.loads(out.strip().splitlines()[-1])
    return bandwidth, f"{how}, pinned to CPUs {cpus}"


@dataclass
class Probe:
    """Probes the placement's device like the engine ran: :meth:`measure` before the warm-ups and after the
    measured requests; :meth:`columns` then."""

    place: Placement
    loaded: Loaded
    cuda: bool               # the placement's device is a GPU torch sees (else the CPU is probed)
    why_cpu: str = ""        # set when the placement asked for cuda but the CPU is probed
    figures: list[float] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.cpus, self.cpus_from = ([], "") if self.cuda else engine_cpus(self.loaded)
        self.threads = None if self.cuda else (self.loaded.threads or self.place.cpu_threads or len(self.cpus))
        self.devices = max(1, self.place.gpus) if self.cuda else 1

    def measure(self) -> None:
        try:
            if self.cuda:
                got = roofline.read_bandwidth("cuda", **({"gib": 1} if self.figures else {}))
            else:
                got = _probe_on(self.cpus, self.threads)
        except Exception as e:  # noqa: BLE001 - e.g. out of GPU memory beside the engine: recorded
            self.notes.append(f"probe {len(self.figures) + 1} failed: {type(e).__name__}: {e}")
            return
        self.figures.append(got[0])
        self.methods.append(got[1])

    def flag(self) -> str:
        """Why the probe may not have run like the engine; empty when it did."""
        if self.cuda:
            return ""
        if self.loaded.threads is None:
            return (f"the engine reported no thread count: probed with {self.threads} threads "
                    f"({'the options' if self.place.cpu_threads else 'every CPU it may use'}), it may have run others")
        if self.cpus_from != "the engine's workers (runtime.workers)" and len(self.cpus) < self.threads:
            return f"{self.threads} threads on {len(self.cpus)} CPUs"
        return ""

    def columns(self) -> dict:
        if not self.figures:
            return {"bandwidth": None, "probes": [], "note": "; ".join(self.notes)}
        how = self.methods[0] + (f"; {len(self.figures)} probes (before the warm-ups, after the measured requests), "
                                 "median" if len(self.figures) > 1 else "")
        if not self.cuda:
            how += f"; CPUs {self.cpus} ({self.cpus_from})" + (f" {self.why_cpu}" if self.why_cpu else "")
        if self.notes:
            how += "; " + "; ".join(self.notes)
        return {"bandwidth": (statistics.median(self.figures), how), "probes": list(self.figures),
                "threads": self.threads, "cpus": ",".join(map(str, self.cpus)), "flag": self.flag(),
                "devices": self.devices}
