"""Building one env: online from its env file, or from a wheelhouse and/or over a provided interpreter's
packages (``software_envs.wheelhouse`` / ``provided_python``). The driver calls this (``python -m llmbench
build-env``, rule build_env); planning/envs.py knows env files (parse, hashes, the online install steps),
planning/offline.py and planning/wheelhouse.py the offline ones. This module sits above all three, so none of
them imports another in a circle."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llmbench.planning import envs, offline, wheelhouse


def build(env_name: str, env_yaml: str | Path, prefix: str | Path, base_dir: str | Path | None = None,
          log: Callable[[str], None] = print, installer: str | None = None,
          wheelhouse_dir: str | Path | None = None, provided_python: str | None = None) -> dict:
    """Build (or find up to date) the venv ``prefix`` for ``env_yaml``; returns the env.json content.

    ``base_dir``: where relative paths in the pip lines are resolved (default: the env file's directory, as
    conda does; so ``..`` in ``envs/hf.yaml`` is the checkout). ``installer``: ``pip``, ``uv`` or ``auto``
    (default: $LLMBENCH_INSTALLER, else ``auto``: uv if it is on PATH, else pip). ``wheelhouse_dir``: install
    from that wheelhouse with no index; ``provided_python``: the env also sees that interpreter's packages
    (planning/offline.py)."""
    env_yaml = Path(env_yaml).resolve()
    spec = envs.parse(env_yaml)
    digest = envs.requirements_hash(spec)
    prefix = Path(prefix).absolute()
    src = offline.source(wheelhouse_dir, provided_python)
    with envs._lock(prefix):
        info = envs.read_info(prefix)
        if info and info.get("requirements_hash") == digest and offline.recorded_source(info) == src \
                and (prefix / "bin" / "python").exists():
            log(f"env {env_name} at {prefix} is up to date ({digest[:12]})")
            return info
        plan = _Plan(env_name, env_yaml, spec, digest, prefix, src,
                     Path(base_dir).resolve() if base_dir else env_yaml.parent,
                     installer or os.environ.get("LLMBENCH_INSTALLER", "auto"), wheelhouse_dir, provided_python)
        plan.prepare()
        envs._remove_stale(prefix, info, log)
        info = plan.run(log)
    log(f"env {env_name} built in {info['build_time_s']} s, {info['size_bytes'] / 1e6:.0f} MB, "
        f"{len(info['pip_freeze'])} packages")
    return info


@dataclass
class _Plan:
    """One env build: online, or from a wheelhouse and/or over a provided interpreter (planning/offline.py)."""
    env_name: str
    env_yaml: Path
    spec: envs.EnvSpec
    digest: str
    prefix: Path
    source: dict
    base: Path
    installer: str
    wheelhouse_dir: str | Path | None
    provided_python: str | None
    manifest: dict | None = None
    facts: dict = field(default_factory=dict)

    def prepare(self) -> None:
        """Refuse, before anything is removed, a wheelhouse of another env file or a provided interpreter that
        lacks what the wheelhouse left out."""
        if self.wheelhouse_dir:
            self.manifest = wheelhouse.load(self.wheelhouse_dir)
            wheelhouse.check(self.manifest, self.spec, self.wheelhouse_dir)
        if self.provided_python:
            self.facts = offline.provided_facts(self.provided_python)
        if self.manifest:
            offline.check_provided(self.manifest, self.facts, self.provided_python)

    def _install(self, log) -> tuple[str, list[str]]:
        py = str(self.prefix / "bin" / "python")
        base_python = self.provided_python or envs._base_python(self.spec.python, log)
        if self.manifest:
            offline.make_venv(base_python, self.prefix, Path(self.wheelhouse_dir), self.installer, log)
            offline.venv_python_matches(self.prefix, self.manifest)
        else:
            envs._make_venv(base_python, self.prefix, self.installer, log)
        if self.facts:
            offline.add_provided(self.prefix, self.facts, log)
        if self.manifest:
            return offline.install(self.spec, self.manifest, Path(self.wheelhouse_dir), py, self.base,
                                   self.installer, log), []
        return envs._install_requirements(self.spec, py, self.base, self.installer, log)

    def run(self, log) -> dict:
        t0 = time.perf_counter()
        log(f"building env {self.env_name} from {self.env_yaml} into {self.prefix} (requirements {self.digest[:12]}"
            + (f", from the wheelhouse {self.wheelhouse_dir}" if self.manifest else "")
            + (f", over {self.provided_python}'s packages" if self.provided_python else "") + ")")
        for d in self.spec.conda_only:
            log(f"WARNING: conda package {d!r} has no pip equivalent here; the venv backend skips it")
        if self.spec.variables:
            log(f"WARNING: conda `variables` {sorted(self.spec.variables)} are not set by the venv backend")
        try:
            used, skipped = self._install(log)
            envs._post_install(self.spec, self.prefix, log)
            info = envs._built_info(self.env_name, self.env_yaml, self.spec, self.digest, self.prefix, used, skipped, t0)
            info["source"] = self.source
            if self.facts:
                info["provided"] = {"python": self.provided_python, "version": self.facts["python"],
                                    "site_packages": self.facts["site_packages"],
                                    "left_out_of_wheelhouse": (self.manifest or {}).get("provided", {})}
            tmp = self.prefix / f".{envs.INFO}.tmp"
            tmp.write_text(json.dumps(info, indent=1) + "\n")
            os.replace(tmp, self.prefix / envs.INFO)
        except BaseException:
            log(f"build failed; {self.prefix} has no {envs.INFO} and will be rebuilt next time")
            raise
        return info


def main_build(name: str, file: str, prefix: str, base_dir: str | None = None, installer: str | None = None,
               wheelhouse_dir: str | None = None, provided_python: str | None = None) -> int:
    build(name, file, prefix, base_dir=base_dir, installer=installer, log=lambda m: print(m, flush=True),
          wheelhouse_dir=wheelhouse_dir, provided_python=provided_python)
    return 0
