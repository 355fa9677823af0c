"""One declaration per engine option / artifact param, one resolver, used at config time only.

An adapter (``OPTIONS`` of an engine module) or a builder (``PARAMS`` of an artifact module) declares

    OPTIONS = {
        "device": Option(str, "cpu", "where to run", choices=("cpu", "cuda")),
        "num_threads": Option((int, None), None, "CPU threads (null: the library's default)", check=at_least(1)),
    }
    CHECKS = [lambda o: "max_cache_len applies to a static cache only"
              if o["max_cache_len"] is not None and o["cache_implementation"] != "static" else None]

:func:`resolve` turns what a config gives into complete values (defaults filled in) plus every problem, each
naming the key, the value and what is allowed. The workflow resolves once, before any job; jobs receive the
resolved values and never validate again. The option docs (docs/options.md) are generated from the same
declarations (:func:`markdown`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Option:
    kind: type | tuple            # accepted Python types; None inside a tuple means null is allowed
    default: Any
    doc: str
    choices: tuple | None = None  # allowed values, when they are a fixed set
    check: Check | None = None    # value -> problem text (without the key) or None

    def types(self) -> tuple[type, ...]:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return tuple(type(None) if k is None else k for k in kinds)

    def type_text(self) -> str:
        return " or ".join("null" if t is type(None) else t.__name__ for t in self.types())

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (without the key), or None."""
        if self.choices is not None:
            if value not in self.choices or (isinstance(value, bool) and not any(c is value for c in self.choices)):
                return f"allowed values are {', '.join(map(str, self.choices))}"
            return self.check(value) if self.check else None
        types = self.types()
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            return f"expected {self.type_text()}"
        if value is None:
            return None
        return self.check(value) if self.check else None


def resolve(spec: Mapping[str, Option], given: Mapping[str, Any] | None, *, where: str, owner: str,
            checks: Iterable[Callable[[dict], str | None]] = ()) -> tuple[dict[str, Any], list[str]]:
    """(values with defaults filled in, problems). ``where`` prefixes each key (``variants.hf-sdpa.options``);
    ``owner`` names what declares them in messages (``option of engine hf``, ``parameter of method gptq``)."""
    given = dict(given or {})
    problems = []
    for key in given:
        if key not in spec:
            problems.append(f"{where}.{key}: unknown {owner}; allowed: {', '.join(spec) or 'none'}")
    values = {key: given.get(key, opt.default) for key, opt in spec.items()}
    for key, opt in spec.items():
        if key in given and (p := opt.problem(given[key])):
            problems.append(f"{where}.{key} = {given[key]!r}: {p}")
    if not problems:  # cross-field rules only make sense on values of the right types
        for rule in checks:
            if (p := rule(values)):
                problems.append(f"{where}: {p}")
    return values, problems


# Small reusable checks (each returns the problem text or None).
def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"expected a value >= {low}"


def in_range(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(v):
        ok = (low < v if low_open else low <= v) and v <= high
        return None if ok else f"expected a number in {'(' if low_open else '['}{low}, {high}]"
    return check


def markdown(title: str, spec: Mapping[str, Option]) -> str:
    lines = [f"### {title}", "", "| option | type / values | default | meaning |", "|---|---|---|---|"]
    for key, o in spec.items():
        allowed = ", ".join(f"`{c}`" for c in o.choices) if o.choices else o.type_text()
        doc = " ".join(o.doc.split()).replace("|", "\\|")
        lines.append(f"| `{key}` | {allowed} | `{o.default!r}` | {doc} |")
    return "\n".join(lines) + "\n"
