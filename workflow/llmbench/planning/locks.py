"""A Snakemake lock left by a run that is gone (SIGKILL, an out-of-memory kill, a closed laptop) is cleared by
the next run in the same directory; the lock of a live run is never touched.

Snakemake's lock files (.snakemake/locks/N.input.lock, N.output.lock) do not say who holds them. So every main
Snakemake process of this workflow registers itself when the Snakefile is parsed, before it can take a lock: a
file .snakemake/llmbench-owners/<host>-<pid>.json on which it holds an exclusive flock for its whole life (the
kernel drops a flock when its process ends, however it ends). Every lock in the directory was therefore taken
by a registered process, and when each registered process of this host is gone (its flock can be taken) and no
other host has registered, the locks are stale: they are removed and the run says so. With a registration of
another host (a shared file system), or with locks that no registration explains (made by a Snakemake run that
did not parse this workflow), nothing is removed and the message says what to check before `--unlock`.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

OWNERS = "llmbench-owners"
_held: list[IO[str]] = []  # this process's registration, open (its flock held) until the process ends


def _register(owners: Path, host: str) -> Path:
    owners.mkdir(parents=True, exist_ok=True)
    me = owners / f"{host}-{os.getpid()}.json"
    handle = open(me, "w")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    json.dump({"host": host, "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, handle)
    handle.flush()
    _held.append(handle)
    atexit.register(lambda: me.unlink(missing_ok=True))
    return me


def _read(record: Path) -> dict:
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return {}


def _alive(record: Path) -> bool:
    """True while the process that registered ``record`` (on this host) holds its flock."""
    try:
        with open(record) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False
    return False


def _who(info: dict) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"


def register_and_clear_stale(state_dir: Path) -> list[str]:
    """Register this process as a possible lock owner in ``state_dir`` (Snakemake's .snakemake) and remove the
    locks there when every process that could have taken them is gone. Returns what to tell the user."""
    host = socket.gethostname()
    owners = state_dir / OWNERS
    me = _register(owners, host)
    live, gone, foreign = [], [], []
    for record in sorted(owners.glob("*.json")):
        if record == me:
            continue
        info = _read(record)
        if info.get("host") != host:
            foreign.append(info)
        elif _alive(record):
            live.append(info)
        else:
            gone.append(info)
            record.unlink(missing_ok=True)
    locks = sorted((state_dir / "locks").glob("*.lock"))
    if not locks or live:
        return []  # nothing to clear, or a live run holds (or may hold) them: Snakemake reports the lock
    if foreign:
        return [f"llmbench: Snakemake's lock in {state_dir / 'locks'} may belong to a run on another host "
                f"({'; '.join(map(_who, foreign))}); if that run is gone, run `snakemake --unlock` once"]
    if not gone:
        return [f"llmbench: {state_dir / 'locks'} holds a lock that no llmbench run registered (made by another "
                "Snakemake run?); if no Snakemake runs in this directory, run `snakemake --unlock` once"]
    for lock in locks:
        lock.unlink(missing_ok=True)
    return [f"llmbench: cleared Snakemake's lock, left by a run that is gone ({'; '.join(map(_who, gone))}); "
            "the jobs it left unfinished rerun (rerun-incomplete in profiles/default)"]
