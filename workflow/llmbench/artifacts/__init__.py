"""Artifact builders: ``llmbench/artifacts/<method>.py`` defines ``build`` — see registry.py.

A builder gets (model_dir, model_manifest, params, out_dir), params resolved from its ``PARAMS`` (every key
present, checked before any job), and returns manifest fields: at least ``library`` (what made it) and
``library_versions``. ``FORMAT`` names what it writes (engines list the formats they load in ``ACCEPTS``). :func:`build` adds hashes, timing and memory.
Builders never import engines, and engines never import builders (what both need: ``llmbench/formats``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llmbench.provenance import manifest
from llmbench.core import memory
from llmbench.core import registry
from llmbench.core.options import Option, resolve as resolve_spec


class ArtifactUnavailable(RuntimeError):
    """The tool that makes this artifact cannot run here. Raise it from ``build`` after writing into
    ``out_dir`` what can be made without the tool (e.g. the exact commands it would run, the config it
    would use); the artifact is then recorded with status ``unverified`` and this reason, and every engine
    asked to load it reports its rows as unverified."""


class SyntheticWeightsRefused(ValueError):
    """The model is synthetic (random weights of a real shape, drawn at load time: speed only) and this method
    needs real weights. A ValueError like every config mistake, not :class:`ArtifactUnavailable`: no machine
    could build it, so it fails the build with the same message from every builder instead of passing as an
    unverified result row."""


def refuse_synthetic(method: str, model_manifest: dict[str, Any], why: str, files_suffice: bool = False) -> None:
    """Raise :class:`SyntheticWeightsRefused` if the model is synthetic; ``why``: what this method needs the
    weights for. ``files_suffice``: the method only converts weight files, so a synthetic model whose random
    weights were saved at fetch time (``materialize``) is accepted (its artifact stays synthetic: speed only)."""
    synthetic = model_manifest.get("synthetic")
    if not synthetic or (files_suffice and isinstance(synthetic, dict) and synthetic.get("materialized")):
        return
    hint = ("give the model `materialize: float16` so its random weights are saved once and this method can "
            "convert them" if files_suffice else "use the reference method with the hf or vllm engine, or a real model")
    raise SyntheticWeightsRefused(
        f"artifact method {method} needs real weights ({why}); this model is synthetic (random weights drawn "
        f"at load time, for speed runs only): {hint}")


PACKAGE = "llmbench.artifacts"


def methods() -> list[str]:
    return registry.names(PACKAGE)


def module(method: str):
    return registry.module(PACKAGE, "artifact method", method)


def env(method: str) -> str:
    return registry.env_of(module(method), method)


def params_spec(method: str) -> dict[str, Option]:
    """The method's declared params (module-level ``PARAMS``; none declared: no params allowed)."""
    return getattr(module(method), "PARAMS", {})


def resolve(method: str, params: dict | None, where: str = "params") -> tuple[dict[str, Any], list[str]]:
    """(every param of the method, defaults filled in; every problem), see core/options.py."""
    return resolve_spec(params_spec(method), params, where=where, owner=f"parameter of method {method}",
                        checks=getattr(module(method), "CHECKS", ()))


def resolved(method: str, params: dict | None = None, where: str = "params") -> dict[str, Any]:
    """Complete params for ``build`` from partial ones (tests, tools); ValueError naming every problem."""
    values, problems = resolve(method, params, where)
    if problems:
        raise ValueError(f"artifact method {method}: " + "; ".join(problems))
    return values


def build(method: str, model_dir: Path, params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Run the builder with ``params`` as given: resolved ones (the workflow's spec; ``resolved`` for others)."""
    builder = module(method).build
    model_manifest = manifest.verify(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    try:
        fields = {"status": "verified", **builder(model_dir, model_manifest, params, out_dir)}
    except ArtifactUnavailable as e:
        print(f"UNVERIFIED: {e}", flush=True)
        fields = {"status": "unverified", "unverified_reason": str(e), "library": None}
    return manifest.write(
        out_dir, "artifact", method=method, params=params,
        input_model_dir=str(model_dir), input_model_hash=model_manifest["content_hash"],
        synthetic=model_manifest.get("synthetic") or None,
        build_time_s=round(time.perf_counter() - t, 3), peak_rss_bytes=memory.peak_rss_bytes(),
        build_load=memory.load_average(), **fields)
