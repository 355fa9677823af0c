"""Engine adapters: ``llmbench/engines/<name>.py`` defines ``ADAPTER`` (see base.Engine) — see registry.py."""

from __future__ import annotations

from typing import Any

from .. import registry

PACKAGE = "llmbench.engines"


def names() -> list[str]:
    return registry.builtin_names(PACKAGE)


def module(name: str):
    return registry.module(PACKAGE, "engine", name)


def adapter_class(name: str) -> type:
    return module(name).ADAPTER


def env(name: str) -> str:
    return registry.env_of(module(name), name)


def create(name: str) -> Any:
    return adapter_class(name)()
