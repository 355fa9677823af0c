"""Wheelhouses: an env file's requirements, with their dependency closure resolved for a target machine (python
version, platform), as wheels in one folder, so the venv backend can build the env there with no index.

``make`` (``python -m llmbench wheelhouse <env> --python 3.12 --platform manylinux_2_28_x86_64 -d DIR``):

1. resolves the env file's pip lines for the target with ``uv pip compile --python-version --python-platform``;
   a "provided" file (``name==version`` lines: what the target already has, e.g. its torch) constrains the
   resolution, and those packages, plus what only they need, are left out;
2. downloads every other pin as a wheel for the target (``pip download --no-deps --only-binary=:all:``); a
   pin with no wheel on the index is built here (``pip wheel --no-deps``), which only works for pure-Python
   packages (a built wheel that the target cannot install is an error naming it);
3. builds the harness line (``..``, the project) as a wheel, and downloads its build requirements (setuptools),
   so an editable install of the checkout also works with no index;
4. writes ``wheelhouse.json``: the env file's requirements hash and lines, the target, the pins, what was left
   out and why, and every wheel's sha256 and size.

``check`` compares a wheelhouse with the env file it is used for and names the package that differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llmbench.planning import envs

MANIFEST = "wheelhouse.json"
FORMAT = 1


class WheelhouseError(envs.EnvError):
    pass


# ------------------------------------------------------------------------------------------------ target

def platform_tags(plat: str) -> list[str]:
    """Every platform tag a machine of tag ``plat`` installs, most specific first: manylinux_2_28_x86_64 also
    takes manylinux_2_27 ... manylinux_2_5 and the legacy aliases manylinux2014/2010/1 (pip download matches
    tags literally, so all of them are passed)."""
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", plat) or re.fullmatch(r"manylinux(2014|2010|1)_(\w+)", plat)
    if not m:
        return [plat]
    if len(m.groups()) == 2:
        minor = {"2014": 17, "2010": 12, "1": 5}[m.group(1)]
        major, arch = 2, m.group(2)
    else:
        major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
    tags = [f"manylinux_{major}_{n}_{arch}" for n in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for n, name in legacy.items() if n <= minor]


def uv_platform(plat: str) -> str:
    """uv's --python-platform for a wheel platform tag: manylinux_2_28_x86_64 -> x86_64-manylinux_2_28."""
    m = re.fullmatch(r"(manylinux_\d+_\d+|manylinux2014)_(\w+)", plat)
    if m:
        return f"{m.group(2)}-{m.group(1)}"
    if re.fullmatch(r"macosx_\d+_\d+_(arm64|x86_64)", plat):
        return ("aarch64" if plat.endswith("arm64") else "x86_64") + "-apple-darwin"
    if plat in ("win_amd64",):
        return "x86_64-pc-windows-msvc"
    raise WheelhouseError(f"--platform {plat}: not a platform tag uv can resolve for; use e.g. manylinux_2_28_x86_64, "
                          "manylinux_2_17_aarch64, manylinux2014_x86_64, macosx_14_0_arm64 or win_amd64")


def supported_tags(python: str, plat: str) -> set:
    """The wheel tags a CPython ``python`` on ``plat`` installs (packaging's own tag order, as pip uses)."""
    from packaging import tags

    version = tuple(int(x) for x in python.split(".")[:2])
    plats = platform_tags(plat)
    return set(tags.cpython_tags(version, platforms=plats)) | set(tags.compatible_tags(version, platforms=plats))


def this_platform() -> str:
    """The most specific platform tag of this machine (the default target)."""
    from packaging import tags

    return next(iter(tags.sys_tags())).platform


# --------------------------------------------------------------------------------------------- provided

def read_provided(path: str | Path | None) -> dict[str, str]:
    """``name==version`` lines (comments, blank lines and ``-`` option lines ignored) -> {canonical name: version}."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    if not path:
        return {}
    out = {}
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except Exception as e:
            raise WheelhouseError(f"{path}:{n}: {line!r} is not a requirement ({e}); write name==version") from None
        pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
        if len(pins) != 1:
            raise WheelhouseError(f"{path}:{n}: {line!r}: a provided package needs one exact version (name==version)")
        out[canonicalize_name(req.name)] = pins[0]
    return out


def _public(version: str) -> str:
    return version.split("+", 1)[0]


def _pin_conflicts(spec: envs.EnvSpec, provided: dict[str, str]) -> list[str]:
    """Env pins (``name==X``) of a package the target provides in another version."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    out = []
    for line in spec.requirements:
        try:
            req = Requirement(line.split()[0])
        except Exception:
            continue
        have = provided.get(canonicalize_name(req.name))
        if have is not None and not req.specifier.contains(have, prereleases=True):
            out.append(f"{req.name}: the env file asks for {req.specifier}, the target provides {have}")
    return out


# ------------------------------------------------------------------------------------------- resolution

@dataclass
class Pin:
    name: str  # canonical
    version: str
    via: set[str] = field(default_factory=set)  # canonical names of the packages that need it; "-r" for the env file


def _compile_input(spec: envs.EnvSpec, base: Path, log) -> tuple[list[str], list[Path]]:
    """The env file's pip lines for uv pip compile (paths absolute, per-requirement options dropped, indexes
    that do not resolve skipped) and the local project directories among them."""
    lines, projects = [], []
    for r in spec.requirements:
        host = envs._unreachable_index(r)
        if host:
            log(f"WARNING: skipping `{r}`: {host} does not resolve from this machine")
            continue
        words = r.split()
        first = words[1] if words[0] in ("-e", "--editable") and len(words) > 1 else words[0]
        d = envs._local_dir(first, base)
        if d is not None:
            projects.append(d)
            lines.append(str(d))
            continue
        resolved = envs._resolve_paths(r, base)
        lines.append(resolved if resolved.startswith("-") else resolved.split(" -")[0])
    return lines, projects


def _parse_compiled(text: str) -> list[Pin]:
    """uv pip compile's output (annotations on) -> pins with who needs them; local paths are left out."""
    from packaging.utils import canonicalize_name

    pins, cur = [], None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" ") and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", line.split(";")[0].strip())
            cur = Pin(canonicalize_name(m.group(1)), m.group(2)) if m else None
            if cur:
                pins.append(cur)
            continue
        via = line.strip().lstrip("#").strip()
        via = via.removeprefix("via").strip()
        if cur is None or not via:
            continue
        if via.startswith("-r "):
            cur.via.add("-r")
        elif not via.startswith("-"):
            cur.via.add(canonicalize_name(re.split(r"[\[ ]", via)[0]))
    return pins


def resolve(spec: envs.EnvSpec, base: Path, python: str, plat: str, provided: dict[str, str],
            log) -> tuple[list[Pin], list[Path]]:
    """The env's dependency closure for the target (every pin, provided ones included), and its projects."""
    uv = envs._find_uv()
    if not uv:
        raise WheelhouseError("resolving for a target needs uv (pip install uv, or the workflow extra)")
    lines, projects = _compile_input(spec, base, log)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "env.in").write_text("\n".join(lines) + "\n")
        (Path(tmp) / "provided.txt").write_text("".join(f"{n}=={_public(v)}\n" for n, v in provided.items()))
        cmd = [uv, "pip", "compile", "env.in", "-c", "provided.txt", "--no-header", "--python-version", python,
               "--python-platform", uv_platform(plat), "--index-strategy", "unsafe-best-match"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                              env=dict(os.environ, UV_PYTHON_DOWNLOADS="never"))
    if proc.returncode != 0:
        raise WheelhouseError(f"resolving {spec.path.name} for python {python} on {plat} failed:\n{proc.stderr.strip()}")
    return _parse_compiled(proc.stdout), projects


def needed(pins: list[Pin], provided: dict[str, str]) -> tuple[list[Pin], dict[str, str]]:
    """(the pins the wheelhouse must carry, {left-out name: why}): a provided package is left out, and so is
    a package that only provided packages need (it comes with them on the target)."""
    by_name = {p.name: p for p in pins}
    keep: set[str] = set()
    # roots: what the env file names, and what a local project (the harness, not a pin itself) depends on
    todo = [p.name for p in pins if p.name not in provided and ("-r" in p.via or p.via - set(by_name))]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo += [q.name for q in pins if name in q.via and q.name not in provided and q.name not in keep]
    left = {n: f"provided ({provided[n]})" for n in by_name if n in provided}
    left.update({n: "needed only by provided packages: " + ", ".join(sorted(by_name[n].via))
                 for n in by_name if n not in keep and n not in left})
    return [p for p in pins if p.name in keep], left


# --------------------------------------------------------------------------------------------- download

def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--progress-bar", "off"]


def _wheels(dest: Path) -> dict[tuple[str, str], Path]:
    """{(canonical name, version): file} of the wheels in ``dest``."""
    from packaging.utils import parse_wheel_filename

    out = {}
    for f in dest.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(f.name)
        out[(name, str(version))] = f
    return out


def _check_installable(wheel: Path, python: str, plat: str) -> None:
    from packaging.utils import parse_wheel_filename

    if not parse_wheel_filename(wheel.name)[3] & supported_tags(python, plat):
        raise WheelhouseError(f"{wheel.name}: built here, but python {python} on {plat} cannot install it (it "
                              "has compiled code and no wheel for the target on the index)")


def _download_one(pin: Pin, dest: Path, target: list[str], python: str, plat: str, log) -> str:
    """One pin into ``dest``: its wheel for the target, else a wheel built here (pure Python only)."""
    req = f"{pin.name}=={pin.version}"
    proc = subprocess.run(_pip("download", "--no-deps", "--only-binary=:all:", *target, "-d", str(dest), req),
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return "downloaded"
    log(f"  no wheel of {req} for the target; building one here (pip wheel --no-deps)")
    with tempfile.TemporaryDirectory() as tmp:
        built = subprocess.run(_pip("wheel", "--no-deps", "-w", tmp, req), capture_output=True, text=True)
        if built.returncode != 0:
            raise WheelhouseError(f"{req}: no wheel for the target and building one failed:\n"
                                  f"{proc.stderr.strip()[-1500:]}\n{built.stderr.strip()[-1500:]}")
        for f in Path(tmp).glob("*.whl"):
            _check_installable(f, python, plat)
            shutil.move(str(f), dest / f.name)
    return "built here"


def download(pins: list[Pin], dest: Path, python: str, plat: str, log) -> dict[str, str]:
    """Every pin's wheel into ``dest`` (one pip call, then one per pin that call could not get);
    returns {name: downloaded | built here}. A file whose version is not the pin's exactly is an error."""
    target = ["--python-version", python, "--implementation", "cp"]
    for t in platform_tags(plat):
        target += ["--platform", t]
    reqs = [f"{p.name}=={p.version}" for p in pins]
    origin = {}
    if reqs:
        proc = subprocess.run(_pip("download", "--no-deps", "--only-binary=:all:", *target, "-d", str(dest), *reqs),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            log("  one download of all pins failed; fetching them one by one")
    have = _wheels(dest)
    for p in pins:
        if (p.name, p.version) in have:
            origin[p.name] = "downloaded"
        elif any(n == p.name for n, _ in have):
            found = [v for n, v in have if n == p.name]
            raise WheelhouseError(f"{p.name}: the wheelhouse holds version {found}, the resolution pinned {p.version}")
        else:
            origin[p.name] = _download_one(p, dest, target, python, plat, log)
    return origin


def build_project(project: Path, dest: Path, python: str, plat: str, log) -> tuple[Path, list[str]]:
    """The project (the harness checkout) as a wheel, and its build requirements' wheels (for an editable
    install with no index); returns (the project wheel, the build requirements)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(_pip("wheel", "--no-deps", "-w", tmp, str(project)), capture_output=True, text=True)
        if proc.returncode != 0:
            raise WheelhouseError(f"building {project} as a wheel failed:\n{proc.stderr.strip()[-2000:]}")
        (wheel,) = Path(tmp).glob("*.whl")
        _check_installable(wheel, python, plat)
        final = dest / wheel.name
        shutil.move(str(wheel), final)
    build_reqs = _build_requirements(project)
    if build_reqs:
        target = ["--python-version", python, "--implementation", "cp"] + [
            x for t in platform_tags(plat) for x in ("--platform", t)]
        proc = subprocess.run(_pip("download", "--only-binary=:all:", *target, "-d", str(dest), *build_reqs),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise WheelhouseError(f"downloading {project}'s build requirements {build_reqs} failed:\n"
                                  f"{proc.stderr.strip()[-1500:]}")
    log(f"  {final.name} (the project {project}; build requirements: {', '.join(build_reqs) or 'none'})")
    return final, build_reqs


def download_seed(dest: Path, python: str, plat: str) -> list[str]:
    """What ``uv venv --seed`` installs into a new venv (pip; setuptools and wheel below python 3.12), so the
    venv itself is made with no index too; returns the wheel files."""
    seed = ["pip"] + (["setuptools", "wheel"] if tuple(map(int, python.split(".")[:2])) < (3, 12) else [])
    before = set(dest.glob("*.whl"))
    target = ["--python-version", python, "--implementation", "cp"] + [
        x for t in platform_tags(plat) for x in ("--platform", t)]
    proc = subprocess.run(_pip("download", "--only-binary=:all:", *target, "-d", str(dest), *seed),  # wheel needs packaging
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise WheelhouseError(f"downloading the venv seed packages {seed} failed:\n{proc.stderr.strip()[-1500:]}")
    return sorted(f.name for f in set(dest.glob("*.whl")) - before) or seed


def _build_requirements(project: Path) -> list[str]:
    """[build-system].requires of a project's pyproject.toml (setuptools' default when it has none)."""
    f = project / "pyproject.toml"
    if not f.is_file():
        return ["setuptools>=40.8.0"]
    try:
        import tomllib
    except ImportError:  # pragma: no cover - python 3.10
        import tomli as tomllib
    return list(tomllib.loads(f.read_text()).get("build-system", {}).get("requires", ["setuptools>=40.8.0"]))


# --------------------------------------------------------------------------------------------- manifest

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wheel_entries(dest: Path, origin: dict[str, str]) -> list[dict]:
    from packaging.utils import parse_wheel_filename

    out = []
    for f in sorted(dest.glob("*.whl")):
        name = parse_wheel_filename(f.name)[0]
        out.append({"file": f.name, "sha256": _sha256(f), "size": f.stat().st_size,
                    "origin": origin.get(name, "downloaded")})
    return out


def load(directory: str | Path) -> dict:
    """A wheelhouse's manifest; a folder without one (or with an unreadable one) is an error naming it."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise WheelhouseError(f"{path}: no wheelhouse manifest; make one with `python -m llmbench wheelhouse "
                              f"<env> -d {directory}` on a machine with network") from None
    except ValueError as e:
        raise WheelhouseError(f"{path}: not JSON ({e})") from None
    if manifest.get("format") != FORMAT:
        raise WheelhouseError(f"{path}: format {manifest.get('format')!r}, this llmbench reads format {FORMAT}")
    return manifest


def _line_key(line: str) -> str:
    """What a hash line is about: ``pip tabulate==0.9.0`` -> ``package tabulate``; others by their first word."""
    kind, _, rest = line.partition(" ")
    if kind == "pip" and not rest.startswith("-"):
        m = re.match(r"[A-Za-z0-9._-]+", rest)
        if m and not rest.startswith("."):
            return f"package {m.group(0).lower()}"
    return f"{kind} {rest}" if kind != "python" else "python"


def differences(manifest: dict, spec: envs.EnvSpec) -> list[str]:
    """What differs between the env file a wheelhouse was made from and ``spec``, one line each, naming the
    package (empty when the requirements hashes agree)."""
    if manifest["requirements_hash"] == envs.requirements_hash(spec):
        return []
    old = {_line_key(x): x for x in manifest["hash_lines"]}
    new = {_line_key(x): x for x in envs.hash_lines(spec)}
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        what = key.removeprefix("package ")
        if a and b:
            out.append(f"{what}: {a.partition(' ')[2]} in the wheelhouse, {b.partition(' ')[2]} in the env file")
        elif b:
            out.append(f"{what}: in the env file ({b}), not in the wheelhouse")
        else:
            out.append(f"{what}: in the wheelhouse ({a}), not in the env file")
    return out or ["the requirements hashes differ (the same lines in another order)"]


def check(manifest: dict, spec: envs.EnvSpec, directory: str | Path) -> None:
    """Refuse a wheelhouse made from another version of the env file, naming what differs."""
    found = differences(manifest, spec)
    if found:
        raise WheelhouseError(
            f"the wheelhouse {directory} was made from another {spec.path.name} (requirements "
            f"{manifest['requirements_hash'][:12]}, the env file's is {envs.requirements_hash(spec)[:12]}):\n  - "
            + "\n  - ".join(found) + f"\nMake it again on a machine with network: python -m llmbench wheelhouse "
            f"{manifest.get('env', '<env>')} --python {manifest['python']} --platform {manifest['platform']} -d {directory}")


# ------------------------------------------------------------------------------------------------- make

def _report(entries: list[dict], left: dict[str, str], log) -> int:
    total = sum(e["size"] for e in entries)
    for e in entries:
        log(f"  {e['size'] / 1e6:9.2f} MB  {e['file']}" + ("  (built here)" if e["origin"] == "built here" else ""))
    for name, why in sorted(left.items()):
        log(f"  left out: {name} ({why})")
    log(f"{len(entries)} wheels, {total / 1e6:.1f} MB in all")
    return total


def make(env_yaml: str | Path, dest: str | Path, python: str | None = None, plat: str | None = None,
         provided_file: str | Path | None = None, base_dir: str | Path | None = None,
         log: Callable[[str], None] = print) -> dict:
    """Make the wheelhouse ``dest`` for ``env_yaml`` and the target; returns its manifest."""
    env_yaml = Path(env_yaml).resolve()
    spec = envs.parse(env_yaml)
    python = python or spec.python or f"{sys.version_info.major}.{sys.version_info.minor}"
    plat = plat or this_platform()
    provided = read_provided(provided_file)
    conflicts = _pin_conflicts(spec, provided)
    if conflicts:
        raise WheelhouseError(f"{env_yaml.name} pins packages the target provides in another version:\n  - "
                              + "\n  - ".join(conflicts))
    base = Path(base_dir).resolve() if base_dir else env_yaml.parent
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(f"resolving {env_yaml.name} for python {python} on {plat}"
        + (f", {len(provided)} packages provided ({provided_file})" if provided else ""))
    pins, projects = resolve(spec, base, python, plat, provided, log)
    keep, left = needed(pins, provided)
    log(f"{len(pins)} packages in the closure, {len(keep)} to carry; downloading into {dest}")
    origin = download(keep, dest, python, plat, log)
    project_wheels, build_reqs = [], []
    for project in projects:
        wheel, reqs = build_project(project, dest, python, plat, log)
        project_wheels.append({"dir": str(project), "wheel": wheel.name})
        build_reqs += reqs
    seed = download_seed(dest, python, plat)
    entries = _wheel_entries(dest, origin)
    total = _report(entries, left, log)
    manifest = {
        "format": FORMAT, "env": spec.name or env_yaml.stem, "env_file": str(env_yaml),
        "requirements_hash": envs.requirements_hash(spec), "requirements": spec.requirements,
        "hash_lines": envs.hash_lines(spec), "post_install": spec.post_install,
        "python": python, "platform": plat, "provided": provided, "left_out": left,
        "pins": [f"{p.name}=={p.version}" for p in keep], "projects": project_wheels,
        "build_requirements": build_reqs, "seed": seed, "wheels": entries, "total_bytes": total,
        "made_in_s": round(time.perf_counter() - t0, 1), "made_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": _platform.node(),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"wrote {dest / MANIFEST} in {manifest['made_in_s']} s")
    return manifest


def main(env: str, dest: str, python: str | None, plat: str | None, provided: str | None,
         envs_dir: str = "envs") -> int:
    """``python -m llmbench wheelhouse <env>``: env is a name in ``envs_dir`` or a path to an env file."""
    f = Path(env) if env.endswith((".yaml", ".yml")) else Path(envs_dir) / f"{env}.yaml"
    if not f.is_file():
        names = sorted(p.stem for p in Path(envs_dir).glob("*.yaml"))
        print(f"no env file {f}; envs in {envs_dir}: {', '.join(names) or 'none'}", file=sys.stderr)
        return 2
    try:
        make(f, dest, python, plat, provided, log=lambda m: print(m, flush=True))
    except WheelhouseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
