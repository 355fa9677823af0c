"""MLC LLM: whether mlc_llm can run here (the builder and the engine give the same reason when it cannot), the
devices it compiles for, and which device an artifact's model library was compiled for."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# python/mlc_llm/support/auto_device.py: AUTO_DETECT_DEVICES (compile --device, convert_weight --device, and
# the device MLCEngine runs a library on)
DEVICES = ("cpu", "cuda", "rocm", "vulkan", "metal", "opencl")
DEFAULT_DEVICE = "cpu"  # the builder's default compile target (param device)

# Written into the env by its post-install step (``python -m llmbench.formats.mlc_wheels <the pip command>``,
# envs/mlc.yaml): what the attempt to install MLC's wheels ran, when, its exit code and the tail of its output.
WHEELS_RECORD = "llmbench-mlc-wheels.json"
TAIL = 800  # characters of a command's output (or of an exception) kept in a reason


def _tail(text: str, n: int = TAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "…" + text[-n:]


def install_attempt(prefix: str | Path | None = None) -> str:
    """What this env's attempt to install MLC's wheels produced, from its record (``WHEELS_RECORD`` in the
    env's prefix), or that there is none (a conda env ignores post-install lines; an env built by hand)."""
    path = Path(prefix or sys.prefix) / WHEELS_RECORD
    if not path.exists():
        return (f"no record of an attempt to install MLC's wheels in this env ({path} is absent: envs/mlc.yaml's "
                "post-install step writes it; conda ignores that step)")
    r = json.loads(path.read_text())
    return (f"the env's attempt to install MLC's wheels at {r.get('when')}, `{r.get('command')}`, exited "
            f"{r.get('exit_code')}: {_tail(r.get('output', ''))}")


def not_installable(error: ImportFailure | BaseException | str) -> str:
    """The reason text (artifact and engine): the import that failed, when, in which interpreter, with what
    exception, and what the env's install attempt produced; nothing in it is a fixed sentence."""
    if not isinstance(error, ImportFailure):
        error = ImportFailure(time.strftime("%Y-%m-%dT%H:%M:%S%z"), sys.executable,
                              error if isinstance(error, str) else f"{type(error).__name__}: {error}")
    return (f"mlc_llm is not installable here (import mlc_llm: {error.exception}; in {error.python} at "
            f"{error.when}); {install_attempt()}")


@dataclass(frozen=True)
class ImportFailure:
    """A failed ``import mlc_llm``: when, in which interpreter, the exception (type: message, truncated)."""

    when: str
    python: str
    exception: str


def import_error() -> ImportFailure | None:
    """None when ``mlc_llm`` imports, else what the failed import said (ImportError; OSError from a broken TVM
    runtime) and when. The import is tried only when this is called, never when this module is imported."""
    try:
        import mlc_llm  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any failure to import means MLC cannot run here
        return ImportFailure(time.strftime("%Y-%m-%dT%H:%M:%S%z"), sys.executable,
                             _tail(f"{type(e).__name__}: {e}", TAIL))
    return None


def compiled_for(manifest: dict[str, Any]) -> str:
    """The device the artifact's model library was compiled for: the builder records it as ``device``; from the
    build params (or the default) for a manifest without that key."""
    if manifest.get("device"):
        return manifest["device"]
    return (manifest.get("params") or {}).get("device", DEFAULT_DEVICE)
