"""The generic launched-server engine: a system that serves an OpenAI-compatible API is one data file
``llmbench/serving/servers/<name>.yaml`` plus one env file ``envs/<env>.yaml``; each file is an engine named
``<name>`` (engines/__init__.py lists them beside the engine modules). Adding a system touches nothing else.

An entry holds (every key is checked by :func:`load`):

- ``doc``, ``docs`` (the documentation its flags were read from), ``env``, ``device`` (cuda), ``gpus_option``
  (the option whose value is the GPU count; none: one GPU);
- ``accepts``: artifact format -> ``{model: <path template>, args: [...]}``: the formats it loads (the planner
  refuses others, naming the formats allowed) and what a format adds to the command;
- ``argv``: the launch command, a list of templates. Placeholders: ``{model}`` (the format's model path),
  ``{artifact_dir}``, ``{artifact_name}``, ``{artifact_parent}``, ``{host}``, ``{port}``, ``{model_name}``,
  ``{python}`` / ``{env_prefix}`` (the job's env), ``{config_file}``, and every option by name. Options with a
  ``flag`` are appended as ``flag value`` when not null (a true bool: the flag alone; false: nothing);
- ``config_file``: ``{name, content}``: a file the server reads (TabbyAPI's config.yml), written beside the
  server log with the same placeholders (a value that is one placeholder keeps its type);
- ``cwd``: where the server runs (a template); ``ready_path``, ``metrics_path``, ``metrics_prefix``,
  ``model_name`` (the ``model`` field of requests; a template);
- ``length_fields``: request fields that ask for exactly ``max_new_tokens`` (``"{n}"`` becomes the number),
  with ``length_note`` saying where they come from; null when the system documents none: then a request the
  model ends early fails its count check (the note says so);
- ``launcher``: how a job sees that the system is there: ``{executable: name}`` (in the env's bin/ or on
  PATH), ``{module: name}`` (importable), or ``{file: template}``; ``needs_cuda``; ``install`` (how it gets
  installed) and ``observed`` (what happened when that was tried on the machine this was written on, with the
  date). A job whose launcher is missing writes one unverified row whose reason says which check failed, what
  the env's install step recorded (:mod:`llmbench.serving.install`) and the observation.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from llmbench.core.engine import Placement
from llmbench.core.hardware import cuda_problem
from llmbench.core.options import Option, at_least

PACKAGE_DIR = "servers"
KINDS = {"str": str, "int": int, "float": float, "bool": bool, "null": None}
ENTRY_KEYS = {"doc", "docs", "env", "device", "gpus_option", "accepts", "argv", "options", "config_file", "cwd",
              "ready_path", "metrics_path", "metrics_prefix", "model_name", "length_fields", "length_note",
              "launcher", "needs_cuda", "install", "observed"}
REQUIRED_KEYS = {"doc", "docs", "env", "accepts", "argv", "launcher", "install", "observed", "length_note"}
OPTION_KEYS = {"kind", "default", "doc", "choices", "min", "flag"}
FIXED = ("model", "artifact_dir", "artifact_name", "artifact_parent", "host", "port", "model_name", "python",
         "env_prefix", "config_file")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _dir() -> Path:
    return Path(str(resources.files("llmbench.serving") / PACKAGE_DIR))


def names() -> list[str]:
    return sorted(p.stem for p in _dir().glob("*.yaml"))


def _option(name: str, spec: dict, where: str) -> Option:
    unknown = set(spec) - OPTION_KEYS
    if unknown:
        raise ValueError(f"{where}.options.{name}: unknown keys {sorted(unknown)}; allowed {sorted(OPTION_KEYS)}")
    kinds = spec["kind"] if isinstance(spec["kind"], list) else [spec["kind"]]
    kind = tuple(KINDS[k] for k in kinds)
    choices = tuple(spec["choices"]) if "choices" in spec else None
    check = at_least(spec["min"]) if "min" in spec else None
    doc = spec["doc"] + (f" ({spec['flag']})" if spec.get("flag") and spec["flag"] not in spec["doc"] else "")
    return Option(kind if len(kind) > 1 else kind[0], spec["default"], doc, choices=choices, check=check)


@dataclass(frozen=True)
class Entry:
    name: str
    raw: dict[str, Any]
    options: dict[str, Option]

    def __getattr__(self, key: str):  # the entry's keys, None when absent
        if key in ENTRY_KEYS:
            return self.raw.get(key)
        raise AttributeError(key)


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    return set()


def _check(name: str, raw: dict, options: dict[str, Option]) -> None:
    where = f"server entry {name} ({_dir() / (name + '.yaml')})"
    unknown, missing = set(raw) - ENTRY_KEYS, REQUIRED_KEYS - set(raw)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    known = set(FIXED) | set(options)
    used = _placeholders([raw["argv"], raw.get("config_file"), raw.get("cwd"), raw.get("model_name"),
                          [a for f in raw["accepts"].values() for a in [f.get("model", ""), *f.get("args", [])]]])
    if used - known:
        raise ValueError(f"{where}: unknown placeholders {sorted(used - known)}; known: {sorted(known)}")
    if sorted(raw["launcher"]) not in (["executable"], ["module"], ["file"]):
        raise ValueError(f"{where}: launcher must be one of {{executable: ...}}, {{module: ...}}, {{file: ...}}")
    if raw.get("gpus_option") and raw["gpus_option"] not in options:
        raise ValueError(f"{where}: gpus_option {raw['gpus_option']!r} is not an option")


@functools.lru_cache(maxsize=None)
def entry(name: str) -> Entry:
    import yaml

    path = _dir() / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    options = {k: _option(k, v, f"server entry {name}") for k, v in (raw.get("options") or {}).items()}
    _check(name, raw, options)
    return Entry(name, raw, options)


# ----------------------------------------------------------------------------------------------- rendering

def _render(value: Any, values: dict[str, Any]) -> Any:
    """A template with its placeholders filled; a string that is exactly one placeholder keeps the value's
    type (a port stays an int in a YAML config)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, values) for v in value]
    return value


def _flags(e: Entry, opts: dict[str, Any]) -> list[str]:
    out = []
    for key in e.options:
        flag = (e.raw["options"][key] or {}).get("flag")
        value = opts.get(key)
        if not flag or value is None or value is False:
            continue
        out += [flag] if value is True else [flag, str(value)]
    return out


def values(e: Entry, artifact_dir: Path, opts: dict[str, Any], host: str, port: int, artifact_format: str,
           config_file: Path | None) -> dict[str, Any]:
    """Every placeholder's value for one launch."""
    artifact_dir = Path(artifact_dir).resolve()
    v = {**opts, "artifact_dir": str(artifact_dir), "artifact_name": artifact_dir.name,
         "artifact_parent": str(artifact_dir.parent), "host": host, "port": int(port), "python": sys.executable,
         "env_prefix": sys.prefix, "config_file": str(config_file) if config_file else ""}
    v["model_name"] = _render(e.model_name or "llmbench", v)
    v["model"] = _render(e.accepts[artifact_format].get("model", "{artifact_dir}"), v)
    return v


def argv(e: Entry, v: dict[str, Any], artifact_format: str, opts: dict[str, Any]) -> list[str]:
    cmd = [str(a) for a in _render(e.argv, v)]
    cmd += [str(a) for a in _render(e.accepts[artifact_format].get("args", []), v)]
    cmd += _flags(e, opts)
    exe = (e.launcher or {}).get("executable")
    if exe and cmd[0] == exe and (Path(sys.prefix) / "bin" / exe).exists():
        cmd[0] = str(Path(sys.prefix) / "bin" / exe)  # the env's own copy (its bin/ need not be on PATH)
    return cmd


def config_text(e: Entry, v: dict[str, Any]) -> str | None:
    if not e.config_file:
        return None
    import yaml

    return yaml.safe_dump(_render(e.config_file["content"], v), sort_keys=False)


def default_format(e: Entry) -> str:
    return next(iter(e.accepts))


def server(e: Entry, artifact_dir: Path, manifest: dict[str, Any], opts: dict[str, Any], host: str, port: int,
           *, workdir: Path | None = None, artifact_format: str | None = None):
    """The ServerCommand of one launch; a config file the entry names is written into ``workdir`` (a fresh
    temporary directory when none is given)."""
    from llmbench.core.server import ServerCommand

    fmt = artifact_format or default_format(e)
    if fmt not in e.accepts:
        raise ValueError(f"engine {e.name}: artifact format {fmt!r} is not accepted; allowed formats are "
                         f"{', '.join(e.accepts)}")
    config_file = None
    if e.config_file:
        if workdir is None:
            import tempfile

            workdir = Path(tempfile.mkdtemp(prefix=f"llmbench-{e.name}-"))
        config_file = Path(workdir).resolve() / e.config_file["name"]
    v = values(e, artifact_dir, opts, host, port, fmt, config_file)
    cmd = argv(e, v, fmt, opts)
    text = config_text(e, v)
    if config_file is not None:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(text)
    facts = {"server": e.name, "argv": cmd, "artifact_format": fmt, "exact_length": length_text(e),
             "docs": e.docs, **({"config_file": str(config_file), "config": text} if text else {}),
             **{k: opts[k] for k in ("dtype",) if k in opts}}
    return ServerCommand(argv=cmd, model_name=v["model_name"], ready_path=e.ready_path or "/v1/models",
                         metrics_path=e.metrics_path, metrics_prefixes=tuple(filter(None, [e.metrics_prefix])),
                         cwd=_render(e.cwd, v) if e.cwd else None, facts=facts)


def length_text(e: Entry) -> str:
    if e.length_fields:
        return f"requested with {json.dumps(e.length_fields)} ({e.length_note})"
    return f"not requestable: early EOS fails the count check ({e.length_note})"


def request_options(e: Entry, max_new_tokens: int, end_ids: list[int]) -> dict[str, Any]:
    return _render(e.length_fields or {}, {"n": int(max_new_tokens)})


# ------------------------------------------------------------------------------------------ launcher check

def _missing(e: Entry) -> str | None:
    how = e.launcher
    if "executable" in how:
        exe = how["executable"]
        if (Path(sys.prefix) / "bin" / exe).exists() or shutil.which(exe):
            return None
        return f"{exe} is not on PATH (nor in this env's bin/)"
    if "module" in how:
        import importlib.util

        try:
            found = importlib.util.find_spec(how["module"]) is not None
        except (ImportError, ValueError):
            found = False
        return None if found else f"{how['module']} is not installed in this env ({sys.prefix})"
    path = _render(how["file"], {"env_prefix": sys.prefix, "python": sys.executable})
    return None if Path(path).exists() else f"{path} does not exist"


def launcher_problem(e: Entry, opts: dict[str, Any]) -> str | None:
    """Why this system's server cannot start here (the unverified row's reason), or None. The reason is what this
    run saw (the import or file missing, this env's install record); the entry's dated ``observed`` text follows
    in a bracket labelled as a static note, never as part of what was seen."""
    from llmbench.serving import install

    missing = _missing(e)
    if missing is None:
        return cuda_problem() if e.needs_cuda else None
    return (f"{missing}: {e.install}; {install.attempt(e.name)}. [Static note, written with this entry, not "
            f"observed in this run: {e.observed}]")


# --------------------------------------------------------------------------------------- the engine module

def tokenizer_dir(artifact_dir: Path, manifest: dict[str, Any]) -> Path:
    """The artifact's HF tokenizer: a tokenizer/ the artifact carries, else its own files."""
    sub = Path(artifact_dir) / "tokenizer"
    return sub if sub.is_dir() else Path(artifact_dir)


def placement(e: Entry, opts: dict[str, Any]) -> Placement:
    gpus = int(opts[e.gpus_option]) if e.gpus_option else 1
    return Placement(device=e.device or "cuda", gpus=gpus)


@functools.lru_cache(maxsize=None)
def module(name: str) -> ModuleType:
    """The entry as an engine module (the attributes engines/__init__.py and serving/job.py read)."""
    e = entry(name)
    mod = ModuleType(f"llmbench.serving.servers.{name}", e.doc)
    mod.__file__ = str(_dir() / f"{name}.yaml")
    mod.ENTRY, mod.ENV, mod.ACCEPTS, mod.OPTIONS, mod.CHECKS = e, e.env, tuple(e.accepts), e.options, ()
    mod.server = functools.partial(server, e)
    mod.launcher_problem = functools.partial(launcher_problem, e)
    mod.request_options = functools.partial(request_options, e)
    mod.placement = functools.partial(placement, e)
    mod.tokenizer_dir = tokenizer_dir
    return mod
