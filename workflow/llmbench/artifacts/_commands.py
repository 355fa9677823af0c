"""What the artifact methods built by external commands share (exl2.py, trtllm_engine.py): the exact
commands written to ``commands.sh`` in the artifact (``$OUT`` = the artifact directory, runnable where the
tool is installed), the HF tokenizer copied beside them, and the tool's absence as an unverified artifact whose
reason says what the import said and what the env's install step recorded (llmbench.serving.install). Nothing
the tool would write is made up: without the tool the artifact holds only the plan."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from llmbench.artifacts import ArtifactUnavailable
from llmbench.formats import TOKENIZER_FILES

COMMANDS_FILE = "commands.sh"
TOKENIZER = (*TOKENIZER_FILES, "vocab.json", "merges.txt", "added_tokens.json", "tokenizer.model")


def import_problem(module: str) -> str | None:
    """None when ``module`` imports in this env, else the exception (type: message, its last 500 characters)."""
    try:
        __import__(module)
    except Exception as e:  # noqa: BLE001 - any failure means the tool cannot run here (a CUDA JIT build too)
        text = " ".join(f"{type(e).__name__}: {e}".split())
        return text if len(text) <= 500 else "…" + text[-500:]
    return None


def _word(arg: str, out_dir: str) -> str:
    if arg == out_dir:
        return '"$OUT"'
    if arg.startswith(out_dir + "/"):
        return '"$OUT"/' + shlex.quote(arg[len(out_dir) + 1:])
    return shlex.quote(arg)


def write_plan(out_dir: Path, argvs: list[list[str]], header: str) -> Path:
    out = str(out_dir)
    lines = ["#!/usr/bin/env bash", *(f"# {h}" for h in header.splitlines()), "set -euo pipefail",
             'OUT="${OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"  # the artifact directory']
    lines += [" ".join(_word(a, out) for a in argv) for argv in argvs]
    path = out_dir / COMMANDS_FILE
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def copy_tokenizer(model_dir: Path, out_dir: Path) -> list[str]:
    names = [f for f in TOKENIZER if (Path(model_dir) / f).exists()]
    for name in names:
        shutil.copy(Path(model_dir) / name, out_dir / name)
    return names


def unavailable(system: str, module: str, problem: str) -> ArtifactUnavailable:
    from llmbench.serving import install

    return ArtifactUnavailable(f"{module} does not import in this env ({sys.prefix}): {problem}; "
                               f"{install.attempt(system)}; {COMMANDS_FILE} holds the exact commands this build runs")


def run(argvs: list[list[str]]) -> dict[str, float]:
    """Run the commands in order (their output into the job's log); seconds per command."""
    took = {}
    for i, argv in enumerate(argvs):
        print("$ " + shlex.join(argv), flush=True)
        t = time.perf_counter()
        proc = subprocess.run(argv, stdout=sys.stdout, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"`{shlex.join(argv)}` failed ({proc.returncode}); its output is above")
        took[f"{i}:{Path(argv[0]).name}"] = round(time.perf_counter() - t, 1)
    return took
