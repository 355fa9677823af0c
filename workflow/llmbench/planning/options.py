"""docs/options.md, generated from the declarations (core/options.py ``Option``) of every built-in engine and
artifact method. ``Option``, ``REQUIRED``, ``at_least`` and ``in_range`` are re-exported for plug-ins written
against this module's old place: llmbench's own modules import them from ``llmbench.core.options``."""

from __future__ import annotations

import json
from typing import Mapping

from llmbench.core.options import REQUIRED, Option, _text, at_least, in_range  # noqa: F401 (plug-ins' old path)


def markdown(title: str, spec: Mapping[str, Option], noun: str = "option") -> str:
    lines = [f"### {title}", ""]
    if not spec:
        return "\n".join(lines + [f"No {noun}s.", ""])
    lines += [f"| {noun} | type / values | default | meaning |", "|---|---|---|---|"]
    for key, o in spec.items():
        allowed = ", ".join(f"`{_text(c)}`" for c in o.choices) if o.choices else o.type_text()
        doc = " ".join(o.doc.split())
        if o.when:
            doc = f"{doc.rstrip('.')}. Only with {o.when_text()} (else null)."
        default = "required" if o.default is REQUIRED else f"`{json.dumps(o.default)}`"
        doc = doc.replace("|", "\\|")
        lines.append(f"| `{key}` | {allowed} | {default} | {doc} |")
    return "\n".join(lines) + "\n"


def markdown_doc() -> str:
    """docs/options.md: every built-in engine's options and artifact method's params (plugins excluded, so the
    file does not depend on what is installed)."""
    from llmbench import artifacts, engines
    from llmbench.core import registry

    parts = ["# Engine options and artifact params", "",
             "Generated from the declarations (`OPTIONS` in `workflow/llmbench/engines/<name>.py`, `PARAMS` in",
             "`workflow/llmbench/artifacts/<method>.py`; launched servers: `options` in `workflow/llmbench/serving/servers/<name>.yaml`) by `python -m llmbench options-doc --out docs/options.md`;",
             "do not edit by hand. Every value is checked before any job; jobs receive all of them, defaults",
             "filled in. An engine runs only artifacts whose format it loads.", "",
             "## Engines (`variants.<name>.options`)", ""]
    for name in registry.builtin_names(engines.PACKAGE):
        mod = engines.module(name)
        parts.append(markdown(f"engine `{name}`", engines.options_spec(name)))
        parts += [f"Loads artifact formats: {', '.join(getattr(mod, 'ACCEPTS', ())) or 'any'}.", ""]
    parts += ["## Artifact methods (`artifacts.<name>.params`)", ""]
    for method in registry.builtin_names(artifacts.PACKAGE):
        mod = artifacts.module(method)
        parts.append(markdown(f"method `{method}`", artifacts.params_spec(method), "param"))
        parts += [f"Writes format: {getattr(mod, 'FORMAT', 'unknown')}.", ""]
    return "\n".join(parts)
