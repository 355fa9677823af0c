"""A server system's install step, as an env file's post-install line, that never fails the env build:

    # llmbench-post-install: python -m llmbench.serving.install lmdeploy --needs-cuda -- pip install lmdeploy==0.18.0

runs the command (in the env being built; ``--needs-cuda``: only where a CUDA GPU is visible, since the
wheels are CUDA builds that cannot serve without one) and records what happened (when, the command, the exit
code, the tail of its output, or why it was skipped) in ``<env prefix>/llmbench-install-<system>.json``. The
job's unverified reason quotes that record (:func:`attempt`), so a row says what this machine's install did.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

TAIL = 600


def record_path(system: str, prefix: str | Path | None = None) -> Path:
    return Path(prefix or sys.prefix) / f"llmbench-install-{system}.json"


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TAIL else "…" + text[-TAIL:]


def attempt(system: str, prefix: str | Path | None = None) -> str:
    """What this env's install step for ``system`` did, from its record, or that there is none."""
    path = record_path(system, prefix)
    if not path.exists():
        return (f"no install record in this env ({path} is absent: an env file's llmbench.serving.install "
                "post-install step writes one; this env has none, or it did not run)")
    r = json.loads(path.read_text())
    if r.get("skipped"):
        return f"the env's install step at {r['when']} skipped `{r['command']}`: {r['skipped']}"
    return f"the env's install step at {r['when']}, `{r['command']}`, exited {r['exit_code']}: {_tail(r['output'])}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("usage: python -m llmbench.serving.install SYSTEM [--needs-cuda] -- COMMAND ...")
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system")
    p.add_argument("--needs-cuda", action="store_true")
    a = p.parse_args(argv[:cut])
    words = argv[cut + 1:]
    # one argument: a shell command line as written; several: one shell word each (bash -c '...' stays one)
    text = words[0] if len(words) == 1 else shlex.join(words)
    rec: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": text, "python": sys.executable}
    from llmbench.core.hardware import cuda_problem

    why = cuda_problem() if a.needs_cuda else None
    if why:
        rec["skipped"] = f"{why}; the env file marks this install --needs-cuda, so it runs only where a CUDA GPU is visible"
    else:
        proc = subprocess.run(text, shell=True, capture_output=True, text=True)
        rec.update(exit_code=proc.returncode, output=_tail(proc.stdout + proc.stderr))
    record_path(a.system).write_text(json.dumps(rec, indent=1))
    print(attempt(a.system), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
