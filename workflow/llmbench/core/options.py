"""One declaration per engine option / artifact param, one resolver, used at config time only.

An adapter (``OPTIONS`` of an engine module) or a builder (``PARAMS`` of an artifact module) declares

    OPTIONS = {
        "device": Option(str, "cpu", "where to run", choices=("cpu", "cuda")),
        "num_threads": Option((int, None), None, "CPU threads (null: the library's default)", check=at_least(1)),
        "kv_cache_gib": Option(int, 2, "KV cache size", when={"device": ("cpu",)}),
    }
    CHECKS = [lambda o: "max_cache_len applies to a static cache only"
              if o["max_cache_len"] is not None and o["cache_implementation"] != "static" else None]

:func:`resolve` turns what a config gives into complete values (defaults filled in) plus every problem, each
naming the key, the value and what is allowed. The workflow resolves once, before any job; jobs receive the
resolved values and never validate again. The option docs (docs/options.md) are generated from the same
declarations (planning/options.py).

``when`` says an option only means something for some values of others (a CPU-only cache size, an int4-only
group size): there its default applies, elsewhere its resolved value is null and setting it is a problem. That
keeps the resolved values honest (an int8 artifact's params do not claim a group size) without a default in code.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

Check = Callable[[Any], "str | None"]


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()  # default of an option the config must give (no sensible default exists)


def _text(value: Any) -> str:
    """A value as a YAML config spells it (null, true)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class Option:
    kind: type | tuple            # accepted Python types; None inside a tuple means null is allowed
    default: Any
    doc: str
    choices: tuple | None = None  # allowed values, when they are a fixed set
    check: Check | None = None    # value -> problem text (without the key) or None
    when: Mapping[str, tuple] | None = None  # other option -> its values for which this one applies

    def types(self) -> tuple[type, ...]:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return tuple(type(None) if k is None else k for k in kinds)

    def type_text(self) -> str:
        return " or ".join("null" if t is type(None) else t.__name__ for t in self.types())

    def allowed_text(self) -> str:
        if self.choices is not None:
            return f"allowed values are {', '.join(map(_text, self.choices))}"
        return f"expected {self.type_text()}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (without the key), or None. A choice matches by value and type, so
        1 is not True and 4.0 is not 4."""
        if self.choices is not None:
            if not any(value is c if c is None else (type(value) is type(c) and value == c) for c in self.choices):
                return self.allowed_text()
            return self.check(value) if self.check and value is not None else None
        types = self.types()
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            return self.allowed_text()
        if value is None:
            return None
        return self.check(value) if self.check else None

    def applies(self, values: Mapping[str, Any]) -> bool:
        return all(values.get(k) in allowed for k, allowed in (self.when or {}).items())

    def when_text(self) -> str:
        return " and ".join(f"{k} {' or '.join(map(_text, v))}" for k, v in (self.when or {}).items())


def resolve(spec: Mapping[str, Option], given: Mapping[str, Any] | None, *, where: str, owner: str,
            checks: Iterable[Callable[[dict], str | None]] = ()) -> tuple[dict[str, Any], list[str]]:
    """(values with defaults filled in, problems). ``where`` prefixes each key (``variants.hf-sdpa.options``);
    ``owner`` names what declares them in messages (``option of engine hf``, ``parameter of method gptq``)."""
    given = dict(given or {})
    noun = owner.split()[0]
    problems = [f"{where}.{key}: unknown {owner}; allowed {noun}s are {', '.join(spec) or 'none'}"
                for key in given if key not in spec]
    values, bad, deferred = {}, set(), []
    for key, opt in spec.items():
        if key in given:
            values[key] = given[key]
            if given[key] is None and opt.when:  # null is what resolving gives where it does not apply
                deferred.append(key)
                continue
            if (p := opt.problem(given[key])):
                problems.append(f"{where}.{key} = {given[key]!r}: {p}")
                bad.add(key)
        elif opt.default is REQUIRED:
            values[key] = None
            problems.append(f"{where}.{key}: required; {opt.allowed_text()}")
            bad.add(key)
        else:
            values[key] = copy.deepcopy(opt.default)  # a list default must not be shared between resolves
    for key, opt in spec.items():
        if opt.when and not bad & set(opt.when) and not opt.applies(values):
            if given.get(key) is not None:
                problems.append(f"{where}.{key} = {given[key]!r}: applies to {opt.when_text()} only")
            values[key] = None
    for key in deferred:  # a null given for an option that does apply is checked like any value
        if spec[key].applies(values) and (p := spec[key].problem(None)):
            problems.append(f"{where}.{key} = None: {p}")
            bad.add(key)
    if not problems:  # cross-field rules only make sense on values of the right types
        for rule in checks:
            if (p := rule(values)):
                problems.append(f"{where}: {p}")
    return values, problems


# Small reusable checks (each returns the problem text or None).
def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"expected a value >= {low}"


def in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    def check(v):
        ok = (low < v if low_open else low <= v) and (v < high if high_open else v <= high)
        return None if ok else f"expected a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return check
