"""The floor plan, drawn from the package's own imports (ast: every ``import llmbench...`` and ``from llmbench...
import``, also those inside functions): each part of workflow/llmbench sits on a floor (FLOORS, drawn in
docs/architecture.md) and imports only from its own floor or below, and no modules import each other in a
cycle. The test names each upward edge (importer -> imported, with the line) and each cycle.

    python tests/test_floors.py     # the report: floors, edges, upward edges, cycles
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "llmbench"

# part (a subpackage, or one module of it where that module sits lower than its package) -> floor.
# The longest matching prefix decides. 0 is the ground floor: it imports nothing else of llmbench.
FLOORS = {
    "core": 0,
    "provenance": 1,
    "formats": 2, "models": 2,
    "serving.install": 2,          # an env's post-install step (python -m llmbench.serving.install): core only
    "engines": 3, "artifacts": 3,
    "serving.launch": 3,           # launched servers as data: engine modules made from serving/servers/*.yaml
    "analysis": 4, "planning": 4,
    "job": 5,
    "serving": 6,
    "cli": 7, "__main__": 7, "": 7,
}
# The one cycle left: the venv builder dispatches offline builds (envs.py -> offline.py, lazily) and both
# offline.py and wheelhouse.py use envs.py's parsing and runner. Breaking it means moving the build dispatch.
KNOWN_CYCLES: list[list[str]] = []


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported llmbench module, relative to the package; line) for every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return [(name.removeprefix("llmbench").lstrip("."), line) for name, line in out
            if name == "llmbench" or name.startswith("llmbench.")]


def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line}; ``from llmbench.x import name`` counts as importing llmbench.x (or
    llmbench.x.name where that is a module)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for mod, path in files.items():
        for name, line in imports(path):
            target = name
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target != mod and (target or name == ""):
                edges[mod].setdefault(target, line)
    return {m: dict(edges.get(m, {})) for m in files}


def floor(mod: str) -> tuple[str, int]:
    part = max((p for p in FLOORS if mod == p or mod.startswith(p + ".") or p == ""), key=len)
    return part, FLOORS[part]


def upward(g: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for mod, targets in sorted(g.items()):
        for t, line in sorted(targets.items()):
            (pa, fa), (pb, fb) = floor(mod), floor(t)
            if fb > fa:
                out.append(f"{mod} (floor {fa}, {pa or 'llmbench'}) -> {t} (floor {fb}, {pb or 'llmbench'}), "
                           f"{mod.replace('.', '/') or '__init__'}.py line {line}")
    return out


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle to name."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def report() -> str:
    g = graph()
    up, cyc = upward(g), cycles(g)
    parts = defaultdict(set)
    for mod, targets in g.items():
        for t in targets:
            if floor(mod)[0] != floor(t)[0]:
                parts[floor(mod)[0]].add(floor(t)[0])
    lines = [f"{len(g)} modules, {sum(map(len, g.values()))} import edges between modules, "
             f"{sum(map(len, parts.values()))} between parts; {len(up)} upward, {len(cyc)} cycles"]
    lines += [f"  {p or 'llmbench'} (floor {FLOORS[p]}) -> {', '.join(sorted(q or 'llmbench' for q in parts[p]))}"
              for p in sorted(parts, key=lambda p: (FLOORS[p], p))]
    lines += ["upward:"] + [f"  {u}" for u in up] + ["cycles:"] + [f"  {' <-> '.join(c)}" for c in cyc]
    return "\n".join(lines)


def test_every_module_sits_on_a_floor():
    assert all(floor(m)[0] or m in ("", "cli", "__main__") for m in graph()), "give the new part a floor in FLOORS"


def test_imports_point_down_only():
    up = upward(graph())
    assert not up, "imports that point up a floor:\n" + "\n".join(up)


def test_no_import_cycles():
    cyc = [c for c in cycles(graph()) if c not in KNOWN_CYCLES]
    assert not cyc, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cyc)


def test_core_imports_nothing_else_of_llmbench_and_no_module_imports_the_plug_in_paths():
    """The ground floor imports only itself; engines/base.py and planning/options.py's Option names are kept
    for plug-ins written against those paths, never imported by llmbench's own modules."""
    g = graph()
    assert not {t for m, ts in g.items() if m.startswith("core") for t in ts if not t.startswith("core")}
    users = [m for m, ts in g.items() if "engines.base" in ts and m != "engines.base"]
    assert not users, f"import llmbench.core.engine, not the plug-ins' old path engines.base: {users}"
    for path in PACKAGE.rglob("*.py"):
        if path.name != "options.py" or path.parent.name != "planning":
            text = path.read_text()
            assert "from llmbench.planning.options import Option" not in text, path


def test_the_checker_names_an_upward_edge_and_a_cycle():
    g = {"core.x": {"job.rows": 3}, "job.rows": {"core.x": 1}, "engines.hf": {"core.x": 2}}
    assert upward(g) == ["core.x (floor 0, core) -> job.rows (floor 5, job), core/x.py line 3"]
    assert cycles(g) == [["core.x", "job.rows"]]


if __name__ == "__main__":
    print(report())
