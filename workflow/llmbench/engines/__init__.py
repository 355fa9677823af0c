"""Engine adapters: ``llmbench/engines/<name>.py`` defines ``ADAPTER`` (see base.Engine) — see registry.py;
launched servers are data: ``llmbench/serving/servers/<name>.yaml`` (serving/launch.py)."""

from __future__ import annotations

from typing import Any

from llmbench.core.engine import Placement
from llmbench.core import registry
from llmbench.core.options import Option, resolve as resolve_spec

PACKAGE = "llmbench.engines"


def data_names() -> list[str]:
    """Engines made from data: one launched-server entry per file of llmbench/serving/servers/ (launch.py)."""
    from llmbench.serving import launch

    return launch.names()


def data_module(name: str):
    from llmbench.serving import launch

    return launch.module(name)


def names() -> list[str]:
    return registry.names(PACKAGE)


def module(name: str):
    return registry.module(PACKAGE, "engine", name)


def adapter_class(name: str) -> type | None:
    """The engine's in-process adapter; None for a serving-only engine (registry.serves_only)."""
    return getattr(module(name), "ADAPTER", None)


def servable(name: str) -> bool:
    """The engine can run serving scenarios: it launches a server or names a remote endpoint."""
    mod = module(name)
    return callable(getattr(mod, "server", None)) or callable(getattr(mod, "endpoint", None))


def options_spec(name: str) -> dict[str, Option]:
    """The engine's declared options (module-level ``OPTIONS``; none declared: no options allowed)."""
    return getattr(module(name), "OPTIONS", {})


def resolve(name: str, options: dict | None, where: str = "options") -> tuple[dict[str, Any], list[str]]:
    """(every option of the engine, defaults filled in; every problem), see core/options.py."""
    mod = module(name)
    return resolve_spec(options_spec(name), options, where=where, owner=f"option of engine {name}",
                        checks=getattr(mod, "CHECKS", ()))


def resolved(name: str, options: dict | None = None, where: str = "options") -> dict[str, Any]:
    """Complete options for ``load`` from partial ones (tests, tools); ValueError naming every problem."""
    values, problems = resolve(name, options, where)
    if problems:
        raise ValueError(f"engine {name}: " + "; ".join(problems))
    return values


def env(name: str, options: dict | None = None) -> str:
    """The env file a variant of this engine runs in: the module's ``env_for(options)`` when it has one (e.g.
    HF with bitsandbytes quantization needs the env that has bitsandbytes), else ``ENV_BY_DEVICE[device]``
    (vLLM's CPU build vs its CUDA build), else ``ENV``, else the engine's name."""
    mod = module(name)
    env_for = getattr(mod, "env_for", None)
    if callable(env_for) and options is not None:
        return env_for(resolved(name, options))
    by_device = getattr(mod, "ENV_BY_DEVICE", None)
    if by_device and options is not None:
        return by_device[resolved(name, options)["device"]]
    return registry.env_of(mod, name)


def default_placement(options: dict) -> Placement:
    """For a module without ``placement``: its ``device`` option, cuda/auto on one GPU, anything else the CPU."""
    if options.get("device") in ("cuda", "auto"):
        return Placement(device="cuda", gpus=1)
    return Placement(device="cpu", gpus=0)


def placement(name: str, options: dict) -> Placement:
    """Where a variant runs: the module's ``placement(options)``, else :func:`default_placement`. Options are
    resolved here (resolving complete options changes nothing), so modules see every key."""
    options = resolved(name, options)
    fn = getattr(module(name), "placement", None)
    return fn(options) if fn is not None else default_placement(options)


def gpus(name: str, options: dict) -> int:
    """GPUs a job of this variant claims (the rules' ``gpu=`` resource)."""
    return int(placement(name, options).gpus)


def launcher(name: str, options: dict) -> list[str]:
    """Interpreter arguments a benchmark job of this variant runs under before ``-m llmbench`` (the module's
    ``launcher(options)``, e.g. HF tensor parallel: torchrun's module form with N ranks); none by default."""
    fn = getattr(module(name), "launcher", None)
    return list(fn(resolved(name, options))) if fn is not None else []


def rank() -> int:
    """This process's rank in a job started by torchrun (RANK), 0 otherwise: only rank 0 writes a job's outputs."""
    import os

    return int(os.environ.get("RANK", "0"))


def create(name: str) -> Any:
    return adapter_class(name)()


def close(engine) -> None:
    """Stop what the engine started (vLLM: its engine-core and worker processes); engines without ``close``
    hold nothing beyond this process."""
    fn = getattr(engine, "close", None)
    if callable(fn):
        fn()
