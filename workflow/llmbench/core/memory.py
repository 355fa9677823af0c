"""Peak RSS on Linux: reset VmHWM via /proc/<pid>/clear_refs before a request, read it back after.

:func:`reset_peak_rss`/:func:`peak_rss_bytes` cover this process (the default when an engine measures
nothing itself); :func:`reset_tree_peak_rss`/:func:`tree_peak_rss_bytes` cover this process and all its
descendants, for engines whose weights and KV cache live in worker processes (vLLM on CPU).
"""

from __future__ import annotations

from pathlib import Path


_NOT_RESET: dict[str, str] = {}   # pid -> why its VmHWM could not be reset (its peak then covers its lifetime)


def _clear_refs(pid: int | str) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        _NOT_RESET.pop(str(pid), None)
    except OSError as e:  # not Linux, not permitted, or the process is gone
        _NOT_RESET[str(pid)] = f"{type(e).__name__}: {e}"


def _vmhwm(pid: int | str) -> int | None:
    """VmHWM of one process in bytes; None where /proc cannot say (not Linux, process gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    _clear_refs("self")


def peak_rss_bytes() -> int:
    peak = _vmhwm("self")
    if peak is not None:
        return peak
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_kind() -> str:
    """What peak_rss_bytes measured: the request's peak, or, where the reset failed or /proc has no VmHWM,
    the process's lifetime peak, said as such (never silently)."""
    if "self" in _NOT_RESET:
        return f"process_lifetime_peak_rss (VmHWM not reset: {_NOT_RESET['self']})"
    if _vmhwm("self") is None:
        return "process_lifetime_peak_rss (no VmHWM in /proc: getrusage's maxrss)"
    return "process_peak_rss"


def _tree_pids() -> list[int]:
    import psutil
    me = psutil.Process()
    return [me.pid] + [c.pid for c in me.children(recursive=True)]


def reset_tree_peak_rss() -> None:
    for pid in _tree_pids():
        _clear_refs(pid)


def tree_peak_rss_bytes() -> int:
    """Sum of the per-process peak RSS (VmHWM) over this process and its live descendants."""
    return sum(_vmhwm(pid) or 0 for pid in _tree_pids())


def load_average() -> dict[str, float | int] | None:
    """The machine's load when a build ends: 1- and 5-minute load averages and the CPUs this process may use.
    A build's wall time is only comparable with others' at a similar load (with --cores N > 1 other jobs run
    beside it); None where the OS does not say."""
    import os

    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return None
    return {"load_1min": round(one, 2), "load_5min": round(five, 2), "cpus": len(os.sched_getaffinity(0))}
