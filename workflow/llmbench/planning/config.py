"""Checks of the config beyond its JSON schema: references between sections, engine options, artifact params
and which engine can load which artifact.

Run before any job (from workflow/rules/common.smk). Every message names the key, the value and what is
allowed, and all problems are reported at once. Options and params are resolved here, once, from the
modules' declarations (core/options.py); :func:`resolved_options` / :func:`resolved_params` give the
complete values the workflow puts into each job's spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench import artifacts, engines
from llmbench.core.engine import has_hook
from llmbench.core import registry
from llmbench.models import sources


class ConfigError(ValueError):
    pass


def _model_problems(config: dict[str, Any]) -> list[str]:
    out = []
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
    return out


def _plugin_problems(config: dict[str, Any]) -> list[str]:
    """Unknown methods and engines, then every artifact's params and every variant's options."""
    out = []
    for name, a in config["artifacts"].items():
        if a["method"] not in artifacts.methods():
            out.append(f"artifacts.{name}.method = {a['method']!r}: allowed methods are {', '.join(artifacts.methods())}")
        else:
            out += artifacts.resolve(a["method"], a.get("params"), where=f"artifacts.{name}.params")[1]
    for name, v in config["variants"].items():
        if v["engine"] not in engines.names():
            out.append(f"variants.{name}.engine = {v['engine']!r}: allowed engines are {', '.join(engines.names())}")
        else:
            out += engines.resolve(v["engine"], v.get("options"), where=f"variants.{name}.options")[1]
    return out


def _format_problem(config: dict[str, Any], i: int, artifact: str, variant: str) -> str | None:
    """Why the engine of ``variant`` cannot load ``artifact`` (its FORMAT is not in the engine's ACCEPTS), or
    None. A module that declares neither (a plugin written before them) is not checked."""
    method, engine = config["artifacts"][artifact]["method"], config["variants"][variant]["engine"]
    if method not in artifacts.methods() or engine not in engines.names():
        return None  # reported above
    fmt = getattr(artifacts.module(method), "FORMAT", None)
    accepts = getattr(engines.module(engine), "ACCEPTS", None)
    if fmt is None or accepts is None or fmt in accepts:
        return None
    return (f"benchmarks[{i}]: variant {variant!r} (engine {engine}) cannot load artifact {artifact!r}: its format "
            f"is {fmt} (method {method}), engine {engine} accepts {', '.join(accepts)}")


def _benchmark_problems(config: dict[str, Any]) -> list[str]:
    out = []
    for i, b in enumerate(config["benchmarks"]):
        for section in ("models", "artifacts", "variants", "scenarios"):
            for key in b[section]:
                if key not in config[section]:
                    out.append(f"benchmarks[{i}].{section}: {key!r} is not defined; defined {section}: "
                               f"{', '.join(config[section]) or 'none'}")
        pairs = [(a, v) for a in b["artifacts"] for v in b["variants"]
                 if a in config["artifacts"] and v in config["variants"]]
        out += [p for a, v in pairs if (p := _format_problem(config, i, a, v))]
    return out


def _quality_problems(config: dict[str, Any]) -> list[str]:
    q = config.get("quality")
    if not q:
        return []
    ran = {(a, v) for b in config["benchmarks"] for a in b["artifacts"] for v in b["variants"]}
    if q["reference_artifact"] not in config["artifacts"]:
        return [f"quality.reference_artifact = {q['reference_artifact']!r}: not defined; defined artifacts: "
                f"{', '.join(config['artifacts'])}"]
    if (q["reference_artifact"], q["reference_variant"]) not in ran:
        return [f"quality.reference_variant = {q['reference_variant']!r}: no benchmark runs artifact "
                f"{q['reference_artifact']!r} with this variant; add it to `benchmarks`"]
    engine = config["variants"][q["reference_variant"]]["engine"]
    try:
        adapter = engines.adapter_class(engine)
    except KeyError:
        return []  # an unknown engine is reported with the variants
    if adapter is None or not has_hook(adapter, "score"):
        return [f"quality.reference_variant = {q['reference_variant']!r}: its engine {engine!r} cannot score "
                "(no score()), so no line could be compared with it; pick a variant whose engine can"]
    return []


def _software_env_problems(config: dict[str, Any], workdir: Path) -> list[str]:
    """software_envs.wheelhouse must be a folder and provided_python an interpreter, both for backend venv."""
    import os

    s = config.get("software_envs") or {}
    out = []
    for key in ("wheelhouse", "provided_python"):
        if s.get(key) and s.get("backend", "venv") != "venv":
            out.append(f"software_envs.{key} applies to backend venv only (backend is {s['backend']!r})")
    wh = s.get("wheelhouse")
    if wh and not (workdir / wh).is_dir():
        out.append(f"software_envs.wheelhouse = {wh!r}: no such folder; it holds one wheelhouse per env "
                   f"(<wheelhouse>/<env>/), made by `python -m llmbench wheelhouse <env> -d {wh}/<env>`")
    py = s.get("provided_python")
    if py and not (Path(py).is_file() and os.access(py, os.X_OK)):
        out.append(f"software_envs.provided_python = {py!r}: not an executable file (give the interpreter's path, "
                   "e.g. /opt/torch/.venv/bin/python3)")
    return out


def problems(config: dict[str, Any], workdir: Path = Path(".")) -> list[str]:
    out = registry.plugin_problems()
    if out:  # the checks below would import the broken plugin again
        return out
    out = _model_problems(config) + _plugin_problems(config) + _software_env_problems(config, workdir)
    for name, s in config["scenarios"].items():
        if "." in name or "/" in name:
            out.append(f"scenarios.{name}: a scenario name may not contain '.' or '/' (it names files: "
                       f"results/runs/<model>/<artifact>/<variant>/<scenario>.parquet and .quality.parquet)")
        if "prompts" in s and not (workdir / s["prompts"]).exists():
            out.append(f"scenarios.{name}.prompts = {s['prompts']!r}: file not found")
    out += _benchmark_problems(config) + _serving_problems(config) + _quality_problems(config)
    return out or _fit_problems(config, workdir)   # the fit check reads a consistent config only


def _fit_problems(config: dict[str, Any], workdir: Path) -> list[str]:
    """GPU jobs that cannot fit their GPUs' memory (planning/fit.py), or a `hardware.gpu` the table lacks."""
    from llmbench.planning import fit

    try:
        return fit.problems(config, workdir)
    except ValueError as e:
        return [str(e)]


def _serving_problems(config: dict[str, Any]) -> list[str]:
    """A serving scenario needs an engine with a server (module-level ``server``), and the prompts it names."""
    out = []
    servable = [n for n in engines.names() if engines.servable(n)]
    for i, b in enumerate(config["benchmarks"]):
        for s in b["scenarios"]:
            serving = config["scenarios"].get(s, {}).get("kind") == "serving"
            for v in b["variants"]:
                engine = config["variants"].get(v, {}).get("engine")
                if engine not in engines.names():
                    continue
                if serving and engine not in servable:
                    out.append(f"benchmarks[{i}]: scenario {s!r} is a serving scenario, but variant {v!r} (engine "
                               f"{engine}) has no server; engines with one: {', '.join(servable)}")
                if not serving and s in config["scenarios"] and engines.adapter_class(engine) is None:
                    out.append(f"benchmarks[{i}]: variant {v!r} (engine {engine}) only serves, so it cannot run the "
                               f"{config['scenarios'][s].get('kind', 'latency')} scenario {s!r}; give it a serving "
                               "scenario (kind: serving)")
    for name, s in config["scenarios"].items():
        if s.get("kind") == "serving" and s.get("dataset", "prompts") == "prompts" and "prompts" not in s:
            out.append(f"scenarios.{name}: dataset prompts needs `prompts` (a JSONL file)")
        if s.get("kind") == "serving" and s.get("dataset") == "shared_prefix" and \
                s.get("prefix_tokens", 0) >= s.get("input_tokens", 0):
            out.append(f"scenarios.{name}.prefix_tokens must be below input_tokens")
    return out


def check(config: dict[str, Any], workdir: Path = Path(".")) -> None:
    found = problems(config, workdir)
    if found:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(found))


def resolved_options(config: dict[str, Any], variant_name: str) -> dict[str, Any]:
    """Every option of the variant's engine, defaults filled in (what its jobs' ``load`` receives)."""
    v = config["variants"][variant_name]
    return engines.resolved(v["engine"], v.get("options"), where=f"variants.{variant_name}.options")


def resolved_params(config: dict[str, Any], artifact_name: str) -> dict[str, Any]:
    """Every param of the artifact's method, defaults filled in (what its ``build`` receives)."""
    a = config["artifacts"][artifact_name]
    return artifacts.resolved(a["method"], a.get("params"), where=f"artifacts.{artifact_name}.params")
