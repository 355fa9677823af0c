"""A real single-node SLURM cluster for tests: Debian's slurmctld + slurmd + munge, started by hand (no systemd),
with fake GPU gres, and stopped again. The recipe and its traps: ../shared/notes/slurm.md (measured 2026-11-24).

Needs root and the packages (``apt-get install slurmctld slurmd slurm-client munge``); :func:`missing` says what
is absent so a test can skip with that reason. Usable by hand too:
``python tests/slurm_cluster.py start DIR`` / ``stop DIR``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "munged", "sinfo", "squeue", "sbatch", "scancel")
FAKE_GPUS = 2
GPU_TYPE = "fake"  # the GRES type, as a cluster names its GPU models (--gpus=fake:1)


def missing() -> str | None:
    """Why no cluster can be started here, else None."""
    absent = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} missing): apt-get install slurmctld slurmd slurm-client munge"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]' installs it)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MB at 85% of what slurmd reports) of this machine."""
    out = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(w.split("=", 1) for w in out.split() if "=" in w)
    return int(fields["CPUs"]), int(int(fields["RealMemory"]) * 0.85)


def _config(state: Path, host: str, cpus: int, mem_mb: int) -> str:
    return "\n".join([
        "ClusterName=llmbench-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=1000",
        "GresTypes=gpu",
        "ReturnToService=2",
        "MinJobAge=300",  # squeue keeps finished jobs long enough for the plugin's squeue status command
        "SchedulerType=sched/backfill",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={state}/ctld",
        f"SlurmdSpoolDir={state}/d",
        f"SlurmctldPidFile={state}/slurmctld.pid",
        f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log",
        f"SlurmdLogFile={state}/slurmd.log",
        "SlurmctldPort=6817",
        "SlurmdPort=6818",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} Gres=gpu:{GPU_TYPE}:{FAKE_GPUS} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class LocalSlurm:
    """One cluster; its state (config, spool, logs, fake GPU device nodes, PIDs) lives under ``state``."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.host = socket.gethostname().split(".")[0]
        self.pids: dict[str, int] = {}

    def start(self, timeout: float = 60) -> "LocalSlurm":
        problem = missing()
        if problem:
            raise RuntimeError(problem)
        running = subprocess.run(["pgrep", "-x", "slurmctld|slurmd"], capture_output=True, text=True).stdout.split()
        if running:  # its ports are taken and its jobs are someone's: never take over a cluster
            raise RuntimeError(f"a SLURM daemon already runs here (pids {', '.join(running)}): stop it first")
        for d in ("ctld", "d", "dev"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        for i in range(FAKE_GPUS):  # gres File= must be character devices (empty regular files are rejected)
            dev = self.state / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a copy of /dev/null
        cpus, mem = _node_resources()
        etc = Path("/etc/slurm")
        etc.mkdir(exist_ok=True)
        (etc / "slurm.conf").write_text(_config(self.state, self.host, cpus, mem))
        (etc / "gres.conf").write_text(f"NodeName={self.host} Name=gpu Type={GPU_TYPE} File={self.state}/dev/nvidia[0-{FAKE_GPUS - 1}]\n")
        self._munge()
        self._daemon("slurmctld", [_sbin("slurmctld"), "-D"])
        self._daemon("slurmd", [_sbin("slurmd"), "-D"])
        self._wait_idle(timeout)
        return self

    def _munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged")], check=True)
        self.pids["munged"] = int(Path("/run/munge/munged.pid").read_text())

    def _daemon(self, name: str, argv: list[str]) -> None:
        log = open(self.state / f"{name}.out", "w")
        self.pids[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True).pid

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                return
            if state.startswith("drain"):  # e.g. after a gres count change: resume it (slurm.md)
                subprocess.run(["scontrol", "update", f"nodename={self.host}", "state=resume"], capture_output=True)
            time.sleep(0.5)
        raise RuntimeError(f"the SLURM node did not become idle in {timeout:.0f} s (sinfo: {state!r}); logs in "
                           f"{self.state}: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-chars:]}"
                         for p in sorted(self.state.glob("*.log")) + sorted(self.state.glob("*.out")))

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            _terminate(pid)
        for f in self.state.glob("*.pid"):
            f.unlink()

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _terminate(pid: int, grace: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child (munged daemonizes): poll for it instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    cmd, state = sys.argv[1], Path(sys.argv[2])
    cluster = LocalSlurm(state)
    if cmd == "start":
        cluster.start()
        (state / "pids").write_text(" ".join(f"{k}={v}" for k, v in cluster.pids.items()))
        print(f"cluster up: {cluster.pids}")
    else:
        cluster.pids = dict((k, int(v)) for k, v in (w.split("=") for w in (state / "pids").read_text().split()))
        cluster.stop()
