"""When a measured window was disturbed (NOISY): the threshold, the measurement it comes from, and the verdict
that both the job's log (job/interference.py, the monitor that measures the window) and the merge's latency
table (analysis/tables.py) give from the monitor's figures.
"""

from __future__ import annotations

# Measured on the 2-core AMD EPYC KVM guest, 2026-12-08 (benchmarks/interference_threshold.py: the embedded model's
# HF fp32 line, 2 threads, 8 new tokens, 1 warm-up + 9 measured requests, its job in its own process). Other
# engineers' work ran on the same machine at the time, so "alone" means no burner of ours, not an idle machine:
#   alone, machine quiet:             others 0.04 cores, 12.0 tok/s
#   alone, others' work running:      others 0.70 / 0.88 cores, 6.7 / 3.7 tok/s (short-lived processes: pip, uv)
#   1 burner:                         others 0.86 / 1.17 cores, 3.7 / 2.4 tok/s
#   2 burners:                        others 1.15 / 1.04 cores, 1.9 / 2.0 tok/s
# A 2-thread line on 2 cores lost half its speed with 0.7 cores taken; the quiet run saw 0.04. The threshold sits
# between: well above the quiet machine's background (kernel threads, the VM's agent), well below the least
# disturbance that halved the speed.
NOISY_OUTSIDE_CORES = 0.25
THRESHOLD_BASIS = ("measured on a 2-core AMD EPYC VM: 0.04 cores of others on the quiet machine, 0.7–1.2 cores when "
                   "other work or CPU burners halved or worse the speed of a 2-thread line; job/interference.py")


def verdict(figures: dict) -> str:
    """'' when the window looks undisturbed; else what was seen, with the figure (the NOISY reason)."""
    if not figures:
        return ""
    seen = []
    others = figures.get("outside_cores", 0) + figures.get("steal_cores", 0)
    if others > NOISY_OUTSIDE_CORES:
        top = (f"; most: {', '.join(figures['top_outside'])}" if figures.get("top_outside") else
               "; no process that outlived the window used 0.05 cores: short-lived ones did")
        seen.append(f"other processes used {figures['outside_cores']:.2f} cores and steal "
                    f"{figures['steal_cores']:.2f} of {figures['cpus']} over the {figures['window_s']:.0f} s window "
                    f"(threshold {NOISY_OUTSIDE_CORES} cores){top}")
    if figures.get("gpu_other_pids"):
        seen.append(f"other processes on the GPU: pids {figures['gpu_other_pids']}")
    if figures.get("gpu_slowdowns"):
        seen.append(f"GPU clocks slowed: {', '.join(figures['gpu_slowdowns'])}")
    return "; ".join(seen)
