"""Software envs without conda: build the env an ``envs/<env>.yaml`` file describes as a Python venv.

The env file stays the single source of truth; conda users run ``snakemake --sdm conda`` and get it from
conda. Here the same file is read for its

- python version (``python=3.11`` among ``dependencies``),
- pip requirement lines (the ``pip:`` list, options such as ``--extra-index-url`` included; a local
  directory such as ``..`` - the harness checkout - is installed editable, relative paths are resolved
  against the env file's directory, as conda does; here, unlike conda, so is a ``--config-settings=KEY=./file``
  value such as a CMake include, whose content is then part of the requirements hash),
- post-install commands, written as YAML comments so that conda ignores them::

      # llmbench-post-install: pip uninstall -y torchvision torchaudio

  They run in a shell whose PATH starts with the venv's ``bin/`` (so ``pip``/``python`` are the venv's).

``requirements_hash`` is a sha256 over the normalized requirement lines, the post-install commands and the
python version: comments and whitespace do not change it, a changed pin does. ``build`` creates the venv
at its final path (venvs are not relocatable) and writes ``env.json`` last: a prefix without ``env.json``
is an incomplete build, wiped and rebuilt by the next ``build``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

INFO = "env.json"
POST_INSTALL = re.compile(r"^\s*#\s*llmbench-post-install:\s*(?P<cmd>.+?)\s*$")
# pip options whose argument is a path (resolved against the env file's directory) or a URL
# a config setting whose value is a path relative to the env file: --config-settings=cmake.define.X=./file
SETTING_PATH = re.compile(r"(--config-settings[= ][^=\s]+=)(\.\.?/\S+)")
PATH_OPTIONS = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-f", "--find-links"}
INDEX_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links"}


class EnvError(RuntimeError):
    pass


@dataclass
class EnvSpec:
    path: Path
    name: str | None
    python: str | None  # "3.11", from python=3.11; None when the file does not say
    requirements: list[str]  # the pip lines as written (whitespace collapsed)
    post_install: list[str]
    conda_only: list[str] = field(default_factory=list)  # conda packages a venv cannot provide
    variables: dict = field(default_factory=dict)  # conda `variables:`, not applied by the venv backend


def _collapse(line: str) -> str:
    return " ".join(str(line).split())


INCLUDE = re.compile(r"(?:-r|--requirement)[= ]\s*(?P<file>[^:\s]+)")


def _expand(lines: list[str], base: Path, seen: tuple[Path, ...] = ()) -> list[str]:
    """The pip lines with each ``-r <file>`` replaced by that file's lines, in place (a path relative to the
    including file, as pip and conda read it): the env files share the harness pins through
    ``envs/harness.txt``; an env's requirements, and so its hash, are the lines it installs, wherever they
    are written."""
    out = []
    for line in lines:
        m = INCLUDE.fullmatch(line)
        if not m:
            out.append(line)
            continue
        f = (base / m.group("file")).resolve()
        if f in seen or not f.is_file():
            raise EnvError(f"{base / m.group('file')}: " + ("included twice in a chain" if f in seen else
                                                             "included by an env file, but missing"))
        text = [_collapse(x.split(" #", 1)[0]) for x in f.read_text().splitlines() if not x.lstrip().startswith("#")]
        out += _expand([x for x in text if x], f.parent, (*seen, f))
    return out


def parse(env_yaml: str | Path) -> EnvSpec:
    path = Path(env_yaml)
    text = path.read_text()
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise EnvError(f"{path}: not a conda env file (expected a mapping)")
    python, conda_only, requirements = None, [], []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict):
            for key, value in dep.items():
                if key != "pip":
                    raise EnvError(f"{path}: unsupported dependency section {key!r}")
                requirements += _expand([_collapse(x) for x in value or [] if _collapse(x)], path.parent)
            continue
        dep = _collapse(dep)
        m = re.fullmatch(r"python\s*(?:=|==|\s)\s*([0-9][0-9.]*)(?:\.\*)?", dep)
        if m:
            python = m.group(1)
        elif dep == "python":
            pass
        elif re.fullmatch(r"pip(\s*[=<>!].*)?", dep):
            pass  # the venv has its own pip
        else:
            conda_only.append(dep)
    post = [m.group("cmd") for m in map(POST_INSTALL.match, text.splitlines()) if m]
    return EnvSpec(path=path, name=doc.get("name"), python=python, requirements=requirements,
                   post_install=post, conda_only=conda_only, variables=dict(doc.get("variables") or {}))


def _normalize_requirement(line: str) -> str:
    """One canonical spelling per requirement: `Torch == 2.13.0` and `torch==2.13.0` hash the same."""
    if line.startswith("-") or "/" in line or line.startswith("."):
        return line
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:  # pragma: no cover - packaging ships with pip/setuptools
        return line.replace(" ", "")
    try:
        req = Requirement(line)
    except Exception:
        return line
    req.name = canonicalize_name(req.name)
    return str(req)


def hash_lines(spec: EnvSpec) -> list[str]:
    """The lines the requirements hash is taken over, in order."""
    lines = [f"python {spec.python or ''}"]
    lines += [f"conda {d}" for d in spec.conda_only]
    lines += [f"pip {_normalize_requirement(r)}" for r in spec.requirements]
    for r in spec.requirements:  # a file a build reads (a CMake include) is part of the env: its content counts
        for rel in _setting_files(r):
            f = spec.path.parent / rel
            lines.append(f"file {rel} {hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else 'missing'}")
    lines += [f"post-install {_collapse(c)}" for c in spec.post_install]
    return lines


def requirement_names(env_yaml: str | Path | EnvSpec) -> list[str]:
    """The distributions an env file's pip lines install: requirement names, and ``llmbench`` for a local
    directory (the harness checkout); option lines (indexes, find-links) and URLs name none."""
    from packaging.requirements import Requirement

    spec = env_yaml if isinstance(env_yaml, EnvSpec) else parse(env_yaml)
    names = []
    for line in spec.requirements:
        first = line.split()[0]
        if first.startswith("-") and first not in ("-e", "--editable"):
            continue
        if first in ("-e", "--editable") or first.startswith(".") or "/" in first:
            names.append("llmbench")
            continue
        try:
            names.append(Requirement(first).name)
        except Exception:
            continue
    return names


def requirements_hash(env_yaml: str | Path | EnvSpec) -> str:
    spec = env_yaml if isinstance(env_yaml, EnvSpec) else parse(env_yaml)
    return hashlib.sha256("\n".join(hash_lines(spec)).encode()).hexdigest()


def read_info(prefix: str | Path) -> dict | None:
    p = Path(prefix) / INFO
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- building

def _is_url(s: str) -> bool:
    return "://" in s or s.startswith("file:")


def _local_dir(token: str, base: Path) -> Path | None:
    if _is_url(token) or not (token.startswith((".", "/", "~"))):
        return None
    p = (base / Path(token).expanduser()).resolve()
    return p if p.is_dir() else None


def _setting_files(line: str) -> list[str]:
    """The relative paths given as ``--config-settings=KEY=./path`` values on one pip line."""
    return [m.group(2) for m in SETTING_PATH.finditer(line)]


def _resolve_setting_paths(line: str, base: Path) -> str:
    """``--config-settings=KEY=./x`` → an absolute path to x beside the env file: a build backend (CMake under
    scikit-build-core) would read a relative value against its own temporary build directory."""
    return SETTING_PATH.sub(lambda m: m.group(1) + str((base / m.group(2)).resolve()), line)


def _resolve_paths(line: str, base: Path) -> str:
    """Make the paths in one pip line absolute; a bare local directory becomes `-e <dir>` (editable)."""
    line = _resolve_setting_paths(line, base)
    if not line.startswith((".", "/", "~", "-")):
        return line  # a requirement specifier (markers may hold quotes): as written
    words = shlex.split(line)
    if not words:
        return line
    if not words[0].startswith("-"):
        d = _local_dir(words[0], base)
        if d is not None:
            return shlex.join(["-e", str(d)] + words[1:])
        if len(words) == 1 and words[0].startswith((".", "~")):  # a local file (wheel, sdist)
            return str((base / Path(words[0]).expanduser()).resolve())
        return line
    opt, _, inline = words[0].partition("=")
    args = ([inline] if inline else []) + words[1:]
    if opt in PATH_OPTIONS and args and not _is_url(args[0]):
        args[0] = str((base / Path(args[0]).expanduser()).resolve())
    return shlex.join([opt] + args)


def _unreachable_index(line: str, timeout: float = 3.0) -> str | None:
    """The host of an index/find-links URL on this line that does not resolve, else None. pip would only
    warn about such an index after retrying every package on it (about 8 s each); skipping it up front
    installs the same packages."""
    words = shlex.split(line)
    if not words:
        return None
    opt, _, inline = words[0].partition("=")
    if opt not in INDEX_OPTIONS:
        return None
    url = inline or (words[1] if len(words) > 1 else "")
    host = urlparse(url).hostname
    if not host:
        return None
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        socket.getaddrinfo(host, 443)
        return None
    except OSError:
        return host
    finally:
        socket.setdefaulttimeout(old)


def _base_python(wanted: str | None, log) -> str:
    """The interpreter the venv is made from: pythonX.Y if the env asks for a version other than the
    driver's and one is on PATH, else the driver's own (with a warning when it is not the wanted one)."""
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not wanted or wanted == mine or mine.startswith(wanted + "."):
        return sys.executable
    found = shutil.which(f"python{wanted}")
    if found:
        return found
    log(f"WARNING: the env asks for python {wanted}; none on PATH, using {mine} ({sys.executable})")
    return sys.executable


def _pip_config() -> dict[str, list[str]]:
    """find-links / extra-index-url / constraint from pip's configuration (files and PIP_* variables), for
    installers that do not read it (uv)."""
    out = {"find-links": [], "extra-index-url": [], "index-url": [], "constraint": []}
    try:
        text = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return out
    for line in text.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in out:
            for v in shlex.split(value.strip().strip("'\"")):
                if v not in out[name]:
                    out[name].append(v)
    return out


def _find_uv() -> str | None:
    """uv on PATH, else the binary of the `uv` package installed with the workflow (``pip install -e
    .[workflow]`` puts it next to snakemake, which is not on PATH when the driver's venv is not activated)."""
    uv = shutil.which("uv")
    if uv:
        return uv
    try:
        from uv import find_uv_bin
    except ImportError:
        return None
    try:
        return find_uv_bin()
    except FileNotFoundError:
        return None


def _installer(py: str, choice: str) -> list[str]:
    """The command that installs into the venv whose interpreter is ``py``: uv when asked for (or, with
    ``auto``, when it is found: on PATH or as the driver's `uv` package), else the venv's own pip."""
    uv = _find_uv()
    if choice == "uv" and not uv:
        raise EnvError("installer uv requested but `uv` is neither on PATH nor installed as a package (pip install uv)")
    if uv and choice in ("uv", "auto"):
        cmd = [uv, "pip", "install", "--python", py]
        cfg = _pip_config()
        for key in ("find-links", "index-url", "extra-index-url", "constraint"):  # uv's flags have pip's names
            for value in cfg[key]:
                cmd += [f"--{key}", value]
        # No --compile-bytecode (nor pip's compiling, --no-compile below): a job compiles what it imports on first
        # use and writes the .pyc into its env (jobs run with PYTHONDONTWRITEBYTECODE cleared: common.smk), which
        # is a fraction of compiling every file of torch, transformers & co. at install (10-20 s an env on 2 cores)
        return cmd + ["--index-strategy", "unsafe-best-match"]
    return [py, "-m", "pip", "install", "--progress-bar", "off", "--no-compile"]


def _make_venv(base_python: str, prefix: Path, installer: str, log) -> None:
    """An empty venv with pip in it (post-install steps and some builders call the env's pip): ``uv venv --seed``
    where uv installs (a second), else ``python -m venv`` (ensurepip: about 4 s on 2 cores)."""
    uv = _find_uv() if installer in ("uv", "auto") else None
    if uv:
        _run([uv, "venv", "--seed", "--python", base_python, str(prefix)], log)
    else:
        _run([base_python, "-m", "venv", str(prefix)], log)


def _run(cmd, log, env=None, shell=False) -> None:
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    log(f"$ {shown}")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, executable="/bin/bash" if shell else None)
    assert proc.stdout is not None
    for line in proc.stdout:
        log("  " + line.rstrip("\n"))
    if proc.wait() != 0:
        raise EnvError(f"command failed ({proc.returncode}) after {time.perf_counter() - t:.1f} s: {shown}")
    log(f"  ({time.perf_counter() - t:.1f} s)")


@contextmanager
def _lock(prefix: Path):
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f".{prefix.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _remove_stale(prefix: Path, info: dict | None, log) -> None:
    """A prefix that is not up to date is rebuilt from scratch, never patched."""
    if prefix.exists():
        why = "incomplete (no env.json)" if info is None else f"built for {info.get('requirements_hash', '?')[:12]}"
        log(f"removing {prefix}: {why}")
        shutil.rmtree(prefix)


def _uv_package_settings(lines: list[str]) -> tuple[list[str], list[str]] | None:
    """(the lines without their per-requirement ``--config-settings=K=V``, uv's ``--config-settings-package
    PKG:K=V`` flags for them): the same settings for the same package's build, given to uv on its command line.
    None where a line has another per-requirement option (pip installs those)."""
    plain, flags = [], []
    for line in lines:
        if line.startswith("-") or " -" not in line:
            plain.append(line)
            continue
        req, *opts = line.split()
        if not all(o.startswith("--config-settings=") for o in opts):
            return None
        name = re.split(r"[<>=!~\[;@ ]", req, maxsplit=1)[0]
        plain.append(req)
        for o in opts:
            flags += ["--config-settings-package", f"{name}:{o.split('=', 1)[1]}"]
    return plain, flags


def _install_requirements(spec: EnvSpec, py: str, base: Path, installer: str, log) -> tuple[str, list[str]]:
    """pip lines of the env file into the venv (paths resolved against ``base``, lines whose index does not
    resolve skipped); returns (the installer used, the skipped lines)."""
    lines, skipped = [], []
    for r in spec.requirements:
        host = _unreachable_index(r)
        if host:
            log(f"WARNING: skipping `{r}`: {host} does not resolve from this machine")
            skipped.append(r)
        else:
            lines.append(_resolve_paths(r, base))
    if not lines:
        return "pip", skipped
    # uv reads no per-requirement options (`pkg==1 --config-settings=...`) in a requirements file; config settings
    # go to it as per-package flags instead (_uv_package_settings), any other such option makes pip install
    per_req = any(not x.startswith("-") and " -" in x for x in lines)
    flags: list[str] = []
    if per_req and installer in ("auto", "uv") and _find_uv():
        converted = _uv_package_settings(lines)
        if converted is not None:
            lines, flags = converted
            per_req = False
    cmd = _installer(py, "pip" if per_req and installer == "auto" else installer) + flags
    with tempfile.NamedTemporaryFile("w", suffix=".requirements.txt", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
        req_file = fh.name
    log("requirements:\n" + "\n".join("  " + x for x in lines))
    try:
        _run(cmd + ["-r", req_file], log)
    finally:
        os.unlink(req_file)
    return ("uv" if "uv" in Path(cmd[0]).name else "pip"), skipped


def _venv_environ(prefix: Path) -> dict[str, str]:
    """The environment of a command run inside the venv: activated, and without the driver's PYTHONPATH or
    PYTHONHOME, which would show the driver's packages (e.g. a checkout's egg-info) as the env's own."""
    venv_env = dict(os.environ, VIRTUAL_ENV=str(prefix), PATH=f"{prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    venv_env.pop("PYTHONHOME", None)
    venv_env.pop("PYTHONPATH", None)
    return venv_env


def _post_install(spec: EnvSpec, prefix: Path, log) -> None:
    """The env file's post-install commands, run with the venv activated (as conda would run them in the env)."""
    for c in spec.post_install:
        _run(c, log, env=_venv_environ(prefix), shell=True)


def _built_info(env_name: str, env_yaml: Path, spec: EnvSpec, digest: str, prefix: Path, used: str,
                skipped: list[str], t0: float) -> dict:
    """The env.json content: what was asked for, what was skipped, and what got installed (pip freeze)."""
    py = str(prefix / "bin" / "python")
    freeze = subprocess.run([py, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True,
                            env=_venv_environ(prefix)).stdout
    version = subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return {
        "env": env_name,
        "env_file": str(env_yaml),
        "requirements_hash": digest,
        "python_wanted": spec.python,
        "python": version,
        "requirements": spec.requirements,
        "post_install": spec.post_install,
        "skipped": {"unreachable_indexes": skipped, "conda_only": spec.conda_only,
                    "variables": sorted(spec.variables)},
        "installer": used,
        "pip_freeze": freeze.splitlines(),
        "build_time_s": round(time.perf_counter() - t0, 1),
        "size_bytes": _du(prefix),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
    }
