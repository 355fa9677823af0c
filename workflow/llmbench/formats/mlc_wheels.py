"""The env's attempt to install MLC LLM's wheels, recorded: ``python -m llmbench.formats.mlc_wheels <command...>``
runs the command (envs/mlc.yaml's post-install step: pip install from MLC's wheel index), then writes when it
ran, the command, its exit code and the tail of its output to ``<env prefix>/llmbench-mlc-wheels.json``
(formats/mlc.WHEELS_RECORD), which the mlc builder and engine quote when mlc_llm does not import. Best effort:
it always exits 0, so an env without MLC is still built and its rows say why MLC is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from llmbench.formats.mlc import WHEELS_RECORD


def attempt(argv: list[str], record: Path) -> dict:
    """Run ``argv``; write and return {when, command, exit_code, output (its last 4000 characters)}."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
        code, output = proc.returncode, proc.stdout + proc.stderr
    except OSError as e:
        code, output = None, f"{type(e).__name__}: {e}"
    print(output, end="", flush=True)
    result = {"when": when, "command": " ".join(argv), "exit_code": code, "output": output[-4000:]}
    record.write_text(json.dumps(result, indent=1) + "\n")
    if code != 0:
        print(f"llmbench: MLC LLM wheels not installed (exit {code}); the mlc artifact and engine will report "
              f"unverified, quoting {record}", flush=True)
    return result


if __name__ == "__main__":
    attempt(sys.argv[1:], Path(sys.prefix) / WHEELS_RECORD)
