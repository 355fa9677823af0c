"""MLC LLM: whether mlc_llm can run here (the builder and the engine give the same reason when it cannot), the
devices it compiles for, and which device an artifact's model library was compiled for."""

from __future__ import annotations

from typing import Any

# python/mlc_llm/support/auto_device.py: AUTO_DETECT_DEVICES (compile --device, convert_weight --device, and
# the device MLCEngine runs a library on)
DEVICES = ("cpu", "cuda", "rocm", "vulkan", "metal", "opencl")
DEFAULT_DEVICE = "cpu"  # the builder's default compile target (param device)

CHECKED_ON = "2026-11-27"
UNREACHABLE = (
    "PyPI's mlc-* packages are empty placeholders (mlc-llm-nightly-cpu and mlc-ai-nightly-cpu exist there only "
    "as 0.1, an sdist holding just mlc/__init__.py, no mlc_llm; PyPI has no mlc-llm) and MLC's wheel index "
    f"https://mlc.ai/wheels is unreachable (mlc.ai does not resolve from this machine; checked {CHECKED_ON})")


def not_installable(error: BaseException | str) -> str:
    """The reason text (artifact and engine): what importing mlc_llm said, and why it cannot be installed."""
    what = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return f"mlc_llm is not installable here (import mlc_llm: {what}): {UNREACHABLE}"


def import_error() -> BaseException | None:
    """None when ``mlc_llm`` imports, else the exception (ImportError; OSError from a broken TVM runtime).
    The import is tried only when this is called, never when this module is imported."""
    try:
        import mlc_llm  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any failure to import means MLC cannot run here
        return e
    return None


def compiled_for(manifest: dict[str, Any]) -> str:
    """The device the artifact's model library was compiled for: the builder records it as ``device``; from the
    build params (or the default) for a manifest without that key."""
    if manifest.get("device"):
        return manifest["device"]
    return (manifest.get("params") or {}).get("device", DEFAULT_DEVICE)
