"""Building an env with no network (``software_envs.wheelhouse``) and over a provided interpreter's packages
(``software_envs.provided_python``), for the venv backend (planning/envs.py calls these).

- From a wheelhouse (``python -m llmbench wheelhouse``, planning/wheelhouse.py): the venv is made with
  ``uv venv --seed --no-index --find-links WH`` (else ``python -m venv``, whose ensurepip needs no network), the
  wheelhouse's pins are installed with ``--no-index --find-links WH --no-deps`` (exactly the closure resolved
  when it was made), and the harness checkout (``..``) editable, its build backend (setuptools) from the
  wheelhouse too. A wheelhouse made from another version of the env file is refused, naming what differs.
- Over a provided interpreter (e.g. the GPU machine's ``/opt/torch/.venv/bin/python3`` with its CUDA torch): the
  venv is made from that interpreter (same python version) and a ``.pth`` file adds its site-packages *after*
  the venv's own (``site.addsitedir``, so its own .pth files apply as well): the env's own pins win, what it
  does not install (the torch a wheelhouse made with ``--provided`` left out) comes from there. A
  ``venv --system-site-packages`` would not do: it sees the *base* interpreter's packages, not a venv's.

Both are recorded in env.json (``source``), and a change of either rebuilds the env.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from llmbench.planning import envs, wheelhouse

PTH = "_llmbench_provided.pth"
# where an installer could find packages other than the wheelhouse: closed for a wheelhouse install
FIND_LINKS_VARS = ("PIP_FIND_LINKS", "UV_FIND_LINKS")


def source(wheelhouse_dir: str | Path | None, provided_python: str | None) -> dict:
    """What the env is installed from, as recorded in env.json and compared by the up-to-date check."""
    out: dict = {"index": "online", "provided_python": provided_python}
    if wheelhouse_dir:
        manifest = Path(wheelhouse_dir) / wheelhouse.MANIFEST
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None
        out.update(index="wheelhouse", wheelhouse=str(Path(wheelhouse_dir).absolute()), wheelhouse_manifest_sha256=digest)
    return out


def recorded_source(info: dict) -> dict:
    """An env.json's source (one written before sources were recorded was built online)."""
    return info.get("source") or {"index": "online", "provided_python": None}


def provided_facts(python: str) -> dict:
    """The provided interpreter's version, site-packages and installed distributions."""
    code = ("import importlib.metadata as m, json, platform, site, sysconfig; p = sysconfig.get_paths(); "
            "print(json.dumps({'python': platform.python_version(), 'site_packages': list(dict.fromkeys("
            "[p['purelib'], p['platlib']] + site.getsitepackages())), 'packages': {d.metadata['Name'].lower(): "
            "d.version for d in m.distributions() if d.metadata['Name']}}))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise envs.EnvError(f"software_envs.provided_python = {python!r}: cannot run it ({e})") from None
    facts = json.loads(out)
    facts["site_packages"] = [d for d in facts["site_packages"] if Path(d).is_dir()]
    return facts


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def check_provided(manifest: dict, facts: dict, python: str | None) -> None:
    """The wheelhouse left packages out as provided: the interpreter must be there and have those versions."""
    wanted = manifest.get("provided") or {}
    if wanted and not python:
        raise envs.EnvError(f"the wheelhouse leaves out {', '.join(sorted(wanted))} as provided by the target; set "
                            "software_envs.provided_python to the interpreter that has them")
    have = {_canonical(k): v for k, v in facts.get("packages", {}).items()}
    bad = [f"{n}: the wheelhouse expects {v}, {python} has {have.get(n, 'none')}" for n, v in sorted(wanted.items())
           if have.get(n) != v]
    if bad:
        raise envs.EnvError("software_envs.provided_python does not provide what the wheelhouse left out:\n  - "
                            + "\n  - ".join(bad))


def add_provided(prefix: Path, facts: dict, log) -> Path:
    """The .pth file that shows the provided interpreter's site-packages to the venv, after its own."""
    (site,) = list(prefix.glob("lib/python*/site-packages"))
    lines = [f"import site; site.addsitedir({d!r})" for d in facts["site_packages"]]
    (site / PTH).write_text("\n".join(lines) + "\n")
    log(f"the env sees the provided interpreter's packages: {', '.join(facts['site_packages'])}")
    return site / PTH


def _closed_environ() -> dict[str, str]:
    """The installer's environment: no find-links but the wheelhouse's (pip's config files are not read)."""
    env = {k: v for k, v in os.environ.items() if k not in FIND_LINKS_VARS}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def make_venv(base_python: str, prefix: Path, wh: Path, installer: str, log) -> None:
    """An empty venv with pip, seeded from the wheelhouse (uv) or by ensurepip (python -m venv): no network."""
    uv = envs._find_uv() if installer in ("uv", "auto") else None
    if uv:
        envs._run([uv, "venv", "--seed", "--no-index", "--find-links", str(wh), "--python", base_python, str(prefix)],
                  log, env=_closed_environ())
    else:
        envs._run([base_python, "-m", "venv", str(prefix)], log)


def install(spec: envs.EnvSpec, manifest: dict, wh: Path, py: str, base: Path, installer: str, log) -> str:
    """The wheelhouse's pins, then the env's local projects (editable), with no index; returns the installer."""
    projects = []
    for r in spec.requirements:
        words = r.split()
        first = words[1] if words[0] in ("-e", "--editable") and len(words) > 1 else words[0]
        d = envs._local_dir(first, base)
        if d is not None:
            projects += ["-e", str(d)]
    uv = envs._find_uv() if installer in ("uv", "auto") else None
    closed = ["--no-index", "--find-links", str(wh), "--no-deps"]
    cmd = [uv, "pip", "install", "--python", py] if uv else [py, "-m", "pip", "install", "--progress-bar", "off",
                                                              "--no-compile"]
    log("from the wheelhouse:\n" + "\n".join("  " + x for x in manifest["pins"] + projects[1::2]))
    with tempfile.NamedTemporaryFile("w", suffix=".pins.txt") as pins:  # the wheelhouse may be read-only
        pins.write("".join(p + "\n" for p in manifest["pins"]))
        pins.flush()
        envs._run(cmd + closed + ["-r", pins.name] + projects, log, env=_closed_environ())
    return "uv" if uv else "pip"


def venv_python_matches(prefix: Path, manifest: dict) -> None:
    """The wheelhouse was resolved for one python X.Y: a venv of another cannot use its compiled wheels."""
    out = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if out != manifest["python"]:
        raise envs.EnvError(f"the wheelhouse is for python {manifest['python']}, the env's venv has {out}: make "
                            f"it with --python {out} or build the env with python {manifest['python']}")
