"""Name -> implementation, for engines and artifact methods: built-ins and plugins.

Built-ins are discovered from the modules of a package, so adding one adds files and touches no other:
  llmbench/engines/<name>.py     defines ``ADAPTER`` (a class implementing engines.base.Engine)
  llmbench/artifacts/<name>.py   defines ``build(model_dir, model_manifest, params, out_dir) -> dict``
Each may set ``ENV`` (the file envs/<ENV>.yaml its jobs run in; default: its own name), ``OPTIONS`` /
``PARAMS`` (name -> planning.options.Option, resolved before any job; none: nothing may be given) with
``CHECKS`` (cross-field rules), and ``ACCEPTS`` (engine: the artifact formats it loads) / ``FORMAT`` (method:
the format it writes). Importing such a module must not import the engine's library: that happens inside
``load``/``build``.

Plugins: an installed package registers a module with the same contract under the entry-point group
``llmbench.engines`` or ``llmbench.artifacts`` (name = the engine/method name, value = ``package.module``).
:func:`plugin_problems` checks every installed plugin before any job runs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import pkgutil
from types import ModuleType

from llmbench.core.engine import Engine, METHOD_HOOKS, MODULE_HOOKS, misspelt_hooks
from llmbench.core.options import Option

SKIP = {"base"}
GROUPS = {"llmbench.engines": "llmbench.engines", "llmbench.artifacts": "llmbench.artifacts"}
ENGINE_METHODS = ("load", "encode", "decode", "generate", "reset_peak_memory", "peak_memory")


# Planning asks for modules tens of thousands of times on a 500-job plan (every input function of every job):
# the package listings and the installed entry points are read once per process (they do not change while
# Snakemake plans; a newly installed plugin is seen by the next run).


@functools.cache
def _builtins(package: str) -> tuple[frozenset[str], frozenset[str]]:
    """(module names, data entry names) of a built-in package."""
    pkg = importlib.import_module(package)
    mods = {m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_") and m.name not in SKIP}
    data = set(getattr(pkg, "data_names", lambda: [])())
    clash = mods & data
    if clash:
        raise ValueError(f"{package}: {sorted(clash)} are both a module and a data entry; keep one")
    return frozenset(mods), frozenset(data)


def builtin_names(package: str) -> list[str]:
    """The package's modules, plus the names its ``data_names()`` lists (engines: the server entries of
    llmbench/serving/servers/, each an engine made from data, see serving/launch.py)."""
    mods, data = _builtins(package)
    return sorted(mods | data)


@functools.cache
def _plugins(group: str) -> tuple[tuple[str, importlib.metadata.EntryPoint], ...]:
    return tuple((ep.name, ep) for ep in importlib.metadata.entry_points(group=group))


def plugins(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    return dict(_plugins(group))


def names(package: str) -> list[str]:
    return sorted(set(builtin_names(package)) | set(plugins(package)))


def module(package: str, kind: str, name: str) -> ModuleType:
    mods, data = _builtins(package)
    if name in data:
        return importlib.import_module(package).data_module(name)
    if name in mods:
        return _checked(importlib.import_module(f"{package}.{name}"), package)
    eps = plugins(package)
    if name in eps:
        return _checked(eps[name].load(), package)
    raise KeyError(f"{kind} {name!r} unknown; known {kind}s: {', '.join(names(package))}")


def hook_problems(mod: ModuleType, package: str) -> list[str]:
    """Names the module defines (its own functions and classes, its values) that are nearly a hook of its
    kind (core/engine.py MODULE_HOOKS, METHOD_HOOKS): a misspelt hook would otherwise be a silent default."""
    hooks = MODULE_HOOKS if package == "llmbench.engines" else METHOD_HOOKS
    own = [n for n, v in vars(mod).items() if not isinstance(v, ModuleType)
           and (not callable(v) or getattr(v, "__module__", None) == mod.__name__)]  # not what it imported
    return misspelt_hooks(own, hooks, f"{mod.__name__}.")


_CHECKED: set[str] = set()


def _checked(mod: ModuleType, package: str) -> ModuleType:
    """The module, once its hook names are checked (once per process: planning asks for modules very often)."""
    if isinstance(mod, ModuleType) and mod.__name__ not in _CHECKED:
        problems = hook_problems(mod, package)
        if problems:
            raise ValueError("; ".join(problems))
        _CHECKED.add(mod.__name__)
    return mod


def env_of(mod: ModuleType, name: str) -> str:
    return getattr(mod, "ENV", name)


def serves_only(mod: ModuleType) -> bool:
    """An engine module with a server launch (``server``) or a remote endpoint (``endpoint``) and no ADAPTER:
    it runs serving scenarios only."""
    return getattr(mod, "ADAPTER", None) is None and (callable(getattr(mod, "server", None))
                                                     or callable(getattr(mod, "endpoint", None)))


def _positional(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _declaration_problems(mod: ModuleType, name: str) -> list[str]:
    """OPTIONS/PARAMS must be Option declarations (the one format config checks and docs read)."""
    spec = getattr(mod, name, {})
    if not isinstance(spec, dict):
        return [f"{name} must be a dict of llmbench.core.options.Option, got {type(spec).__name__}"]
    out = [f"{name}[{key!r}] is not an llmbench.core.options.Option" for key, o in spec.items()
           if not isinstance(o, Option)]
    if not all(callable(c) for c in getattr(mod, "CHECKS", ())):
        out.append("CHECKS must be functions of the resolved values")
    if name == "OPTIONS" and hasattr(getattr(mod, "ADAPTER", None), "OPTIONS"):
        out.append("ADAPTER.OPTIONS is no longer read: declare OPTIONS at module level (core/options.py)")
    return out


def _contract_problems(group: str, mod) -> list[str]:
    if not isinstance(mod, ModuleType):
        return [f"the entry point must name a module, got {type(mod).__name__}"]
    declared = _declaration_problems(mod, "OPTIONS" if group == "llmbench.engines" else "PARAMS")
    return declared + hook_problems(mod, GROUPS[group]) + _callable_problems(group, mod)


def _callable_problems(group: str, mod: ModuleType) -> list[str]:
    if group == "llmbench.engines":
        adapter = getattr(mod, "ADAPTER", None)
        if adapter is None and serves_only(mod):
            return []  # a serving-only engine (a launch command or a remote endpoint, no in-process adapter)
        if adapter is None:
            return ["module defines no ADAPTER (the engine adapter class), nor server() or endpoint() for a "
                    "serving-only engine"]
        abstract = getattr(adapter, "__abstractmethods__", frozenset())
        out = [f"ADAPTER has no method {m}()" for m in ENGINE_METHODS
               if not callable(getattr(adapter, m, None)) or m in abstract]
        if isinstance(adapter, type) and not issubclass(adapter, Engine):  # a subclass was checked at import
            out += misspelt_hooks([n for n in dir(adapter) if callable(getattr(adapter, n, None))],
                                  [n for n in vars(Engine) if not n.startswith("_")], "ADAPTER.")
        expected = {"load": 4, "encode": 2, "decode": 2, "generate": 4}
        for m, n in expected.items():
            if callable(getattr(adapter, m, None)) and len(_positional(getattr(adapter, m))) != n:
                out.append(f"ADAPTER.{m}{inspect.signature(getattr(adapter, m))}: expected {n - 1} arguments "
                           "(see llmbench/core/engine.py)")
        return out
    build = getattr(mod, "build", None)
    if not callable(build):
        return ["module defines no build(model_dir, model_manifest, params, out_dir)"]
    if len(_positional(build)) != 4:
        return [f"build{inspect.signature(build)}: expected (model_dir, model_manifest, params, out_dir)"]
    return []


def plugin_problems() -> list[str]:
    """Every installed plugin that cannot be used, with its package and what is wrong."""
    out = []
    for group, package in GROUPS.items():
        builtins = set(builtin_names(package))
        for name, ep in plugins(group).items():
            dist = ep.dist.name if ep.dist else "unknown package"
            where = f"plugin {name!r} ({group} = {ep.value}, package {dist})"
            if name in builtins:
                out.append(f"{where}: its name clashes with the built-in {package.rsplit('.', 1)[1][:-1]} {name!r}; "
                           "rename the entry point")
                continue
            try:
                mod = ep.load()
            except Exception as e:  # the plugin's own import error, reported with its package
                out.append(f"{where}: cannot be imported: {type(e).__name__}: {e}")
                continue
            out += [f"{where}: {p}" for p in _contract_problems(group, mod)]
    return out
