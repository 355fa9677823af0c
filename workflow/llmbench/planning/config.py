"""Checks of the config beyond its JSON schema: references between sections and per-engine options.

Run before any job (from workflow/rules/common.smk). Every message names the key, the value and what is
allowed, and all problems are reported at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench import artifacts, engines
from llmbench.planning import registry
from llmbench.models import sources


class ConfigError(ValueError):
    pass


def _check_option(where: str, key: str, value: Any, allowed: Any) -> str | None:
    if isinstance(allowed, tuple) and all(isinstance(a, type) for a in allowed):
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
        return None if ok else f"{where}.{key} = {value!r}: expected {names}"
    if isinstance(allowed, type):
        return None if isinstance(value, allowed) else f"{where}.{key} = {value!r}: expected {allowed.__name__}"
    return None if value in allowed else f"{where}.{key} = {value!r}: allowed values are {', '.join(map(str, allowed))}"


def problems(config: dict[str, Any], workdir: Path = Path(".")) -> list[str]:
    out = registry.plugin_problems()
    if out:  # the checks below would import the broken plugin again
        return out
    for name, m in config["models"].items():
        try:
            scheme, value = sources.parse(m["source"])
        except sources.SourceError as e:
            out.append(f"models.{name}.source: {e}")
            continue
        if scheme == "pypi" and "file" not in m:
            out.append(f"models.{name}: a pypi source needs `file` (the GGUF inside the wheel)")
        if scheme == "synthetic" and value not in sources.presets():
            out.append(f"models.{name}.source = {m['source']!r}: synthetic presets are {', '.join(sources.presets())}")
        if scheme == "hf" and "@" not in value:
            out.append(f"models.{name}.source = {m['source']!r}: pin a revision, hf:<org/name>@<revision>")
    for name, a in config["artifacts"].items():
        if a["method"] not in artifacts.methods():
            out.append(f"artifacts.{name}.method = {a['method']!r}: allowed methods are {', '.join(artifacts.methods())}")
            continue
        mod = artifacts.module(a["method"])
        if hasattr(mod, "params_problems"):
            out += [f"artifacts.{name}.params: {p}" for p in mod.params_problems(a.get("params") or {})]
        allowed = getattr(mod, "PARAMS", None)
        for key, value in (a.get("params") or {}).items() if allowed is not None else ():
            if key not in allowed:
                out.append(f"artifacts.{name}.params.{key}: unknown parameter of method {a['method']}; "
                           f"allowed parameters are {', '.join(allowed)}")
            elif (msg := _check_option(f"artifacts.{name}.params", key, value, allowed[key])):
                out.append(msg)
    for name, v in config["variants"].items():
        if v["engine"] not in engines.names():
            out.append(f"variants.{name}.engine = {v['engine']!r}: allowed engines are {', '.join(engines.names())}")
            continue
        mod = engines.module(v["engine"])
        allowed = getattr(mod.ADAPTER, "OPTIONS", {})
        if hasattr(mod, "option_problems"):
            out += [f"variants.{name}.options: {p}" for p in mod.option_problems(v.get("options", {}))]
        for key, value in v.get("options", {}).items():
            if key not in allowed:
                out.append(f"variants.{name}.options.{key}: unknown option of engine {v['engine']}; "
                           f"allowed options are {', '.join(allowed)}")
            elif (msg := _check_option(f"variants.{name}.options", key, value, allowed[key])):
                out.append(msg)
    for name, s in config["scenarios"].items():
        if not (workdir / s["prompts"]).exists():
            out.append(f"scenarios.{name}.prompts = {s['prompts']!r}: file not found")
    for i, b in enumerate(config["benchmarks"]):
        for section in ("models", "artifacts", "variants", "scenarios"):
            for key in b[section]:
                if key not in config[section]:
                    out.append(f"benchmarks[{i}].{section}: {key!r} is not defined; defined {section}: "
                               f"{', '.join(config[section]) or 'none'}")
    q = config.get("quality")
    if q:
        ran = {(a, v) for b in config["benchmarks"] for a in b["artifacts"] for v in b["variants"]}
        if q["reference_artifact"] not in config["artifacts"]:
            out.append(f"quality.reference_artifact = {q['reference_artifact']!r}: not defined; defined artifacts: "
                       f"{', '.join(config['artifacts'])}")
        elif (q["reference_artifact"], q["reference_variant"]) not in ran:
            out.append(f"quality.reference_variant = {q['reference_variant']!r}: no benchmark runs artifact "
                       f"{q['reference_artifact']!r} with this variant; add it to `benchmarks`")
    return out


def check(config: dict[str, Any], workdir: Path = Path(".")) -> None:
    found = problems(config, workdir)
    if found:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(found))
