"""Name -> implementation, for engines and artifact methods.

Built-ins are discovered from the modules of a package, so adding one adds files and touches no other:
  llmbench/engines/<name>.py     defines ``ADAPTER`` (a class implementing engines.base.Engine)
  llmbench/artifacts/<name>.py   defines ``build(model_dir, model_manifest, params, out_dir) -> dict``
Each may set ``ENV`` (the file envs/<ENV>.yaml its jobs run in; default: its own name) and ``OPTIONS`` /
``PARAMS`` (option -> allowed values or type, checked before any job). Importing such a module must not
import the engine's library: that happens inside ``load``/``build``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

SKIP = {"base"}


def builtin_names(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_") and m.name not in SKIP)


def module(package: str, kind: str, name: str) -> ModuleType:
    names = builtin_names(package)
    if name not in names:
        raise KeyError(f"{kind} {name!r} unknown; known {kind}s: {', '.join(names)}")
    return importlib.import_module(f"{package}.{name}")


def env_of(mod: ModuleType, name: str) -> str:
    return getattr(mod, "ENV", name)
