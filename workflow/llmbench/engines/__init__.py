"""Engine adapters: ``llmbench/engines/<name>.py`` defines ``ADAPTER`` (see base.Engine) — see registry.py."""

from __future__ import annotations

from typing import Any

from llmbench.planning import registry

PACKAGE = "llmbench.engines"


def names() -> list[str]:
    return registry.names(PACKAGE)


def module(name: str):
    return registry.module(PACKAGE, "engine", name)


def adapter_class(name: str) -> type:
    return module(name).ADAPTER


def env(name: str, options: dict | None = None) -> str:
    """The env file a variant of this engine runs in: ``ENV_BY_DEVICE[device]`` when the module has one
    (e.g. vLLM's CPU build vs its CUDA build), else ``ENV``, else the engine's name."""
    mod = module(name)
    by_device = getattr(mod, "ENV_BY_DEVICE", None)
    if by_device and options is not None:
        return by_device[options.get("device", "cpu")]
    return registry.env_of(mod, name)


def gpus(name: str, options: dict) -> int:
    """GPUs a job of this variant claims: the module's ``gpus_needed(options)``, else 1 on cuda/auto, else 0."""
    mod = module(name)
    if hasattr(mod, "gpus_needed"):
        return int(mod.gpus_needed(options))
    return 1 if options.get("device") in ("cuda", "auto") else 0


def create(name: str) -> Any:
    return adapter_class(name)()
