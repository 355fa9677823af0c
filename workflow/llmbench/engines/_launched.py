"""What the launched-server engines without an in-process adapter share (tgi.py, sglang.py): the artifact's
HF tokenizer and the check that a CUDA device is visible where the job runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def tokenizer_dir(artifact_dir: Path, manifest: dict[str, Any]) -> Path:
    return Path(artifact_dir)


def cuda_problem() -> str | None:
    """Why no CUDA GPU is usable here (nvidia-smi missing or listing none), else None."""
    if shutil.which("nvidia-smi") is None:
        return "no CUDA GPU here (nvidia-smi is not on PATH)"
    import subprocess

    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    return None if listed else "no CUDA GPU here (nvidia-smi -L lists none)"
