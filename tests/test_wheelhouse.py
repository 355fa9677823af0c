"""Wheelhouses and envs built with no network (planning/wheelhouse.py, planning/offline.py): the target's tags,
what a "provided" list leaves out, the requirements-hash check that names the package, and a real env built
from a wheelhouse made here with every index closed."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from llmbench.planning import config as config_check
from llmbench.planning import env_build, envs, offline, plan, wheelhouse

UNREACHABLE = "http://127.0.0.1:9/simple"  # discard port: nothing answers, so a download fails at once
SMALL = """\
dependencies:
  - python={python}
  - pip:
      - python-dateutil==2.9.0.post0
      - ..
"""
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def _env_file(tmp_path: Path, text: str, name: str = "small.yaml") -> Path:
    f = tmp_path / "envs" / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    return f


# ------------------------------------------------------------------------------------------- unit tests

def test_platform_tags_cover_older_manylinux():
    tags = wheelhouse.platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert wheelhouse.platform_tags("manylinux2014_aarch64")[0] == "manylinux_2_17_aarch64"
    assert wheelhouse.uv_platform("manylinux_2_28_x86_64") == "x86_64-manylinux_2_28"
    with pytest.raises(wheelhouse.WheelhouseError, match="--platform linux_riscv"):
        wheelhouse.uv_platform("linux_riscv")


def test_provided_file(tmp_path):
    f = tmp_path / "provided.txt"
    f.write_text("# the GPU machine\nTorch==2.11.0+cu130\nnumpy==2.5.2  # comment\n\n")
    assert wheelhouse.read_provided(f) == {"torch": "2.11.0+cu130", "numpy": "2.5.2"}
    f.write_text("numpy>=2\n")
    with pytest.raises(wheelhouse.WheelhouseError, match=r"provided.txt:1: 'numpy>=2'.*one exact version"):
        wheelhouse.read_provided(f)


COMPILED = """\
filelock==3.20.0
    # via torch
numpy==2.5.2
    # via
    #   -c provided.txt
    #   pandas
pandas==3.0.0
    # via
    #   -c provided.txt
    #   llmbench
six==1.17.0
    # via python-dateutil
python-dateutil==2.9.0.post0
    # via
    #   -r env.in
    #   pandas
torch==2.11.0
    # via
    #   -c provided.txt
    #   -r env.in
/work/checkout
    # via -r env.in
tzdata==2025.2
    # via pandas
"""


def test_provided_packages_and_what_only_they_need_are_left_out():
    pins = wheelhouse._parse_compiled(COMPILED)
    assert [p.name for p in pins] == ["filelock", "numpy", "pandas", "six", "python-dateutil", "torch", "tzdata"]
    keep, left = wheelhouse.needed(pins, {"torch": "2.11.0+cu130", "pandas": "3.0.0", "numpy": "2.5.2"})
    assert [p.name for p in keep] == ["six", "python-dateutil"]
    assert left["torch"] == "provided (2.11.0+cu130)"
    assert left["filelock"].startswith("needed only by provided packages: torch")
    assert left["tzdata"].startswith("needed only by provided packages: pandas")
    # nothing provided: everything the env file and the local project (llmbench) need is carried
    keep, left = wheelhouse.needed(pins, {})
    assert {p.name for p in keep} == {p.name for p in pins} and left == {}


def test_a_pin_the_target_provides_in_another_version_is_refused(tmp_path):
    env = _env_file(tmp_path, "dependencies:\n  - pip:\n      - torch==2.13.0\n")
    (tmp_path / "p.txt").write_text("torch==2.11.0+cu130\n")
    with pytest.raises(wheelhouse.WheelhouseError, match=r"torch: the env file asks for ==2.13.0, the target provides 2.11.0\+cu130"):
        wheelhouse.make(env, tmp_path / "wh", PY, wheelhouse.this_platform(), tmp_path / "p.txt", log=lambda m: None)


def _fake_wheelhouse(tmp_path: Path, env: Path) -> Path:
    """A wheelhouse manifest made from ``env`` as it is now (no wheels: the check comes before any install)."""
    spec = envs.parse(env)
    d = tmp_path / "wh"
    d.mkdir()
    (d / wheelhouse.MANIFEST).write_text(json.dumps({
        "format": wheelhouse.FORMAT, "env": "small", "requirements_hash": envs.requirements_hash(spec),
        "hash_lines": envs.hash_lines(spec), "python": PY, "platform": "manylinux_2_28_x86_64", "pins": [],
        "provided": {}}))
    return d


def test_a_wheelhouse_of_another_env_file_is_refused_naming_the_package(tmp_path):
    env = _env_file(tmp_path, "dependencies:\n  - python=3.11\n  - pip:\n      - tabulate==0.9.0\n      - six==1.17.0\n")
    wh = _fake_wheelhouse(tmp_path, env)
    env.write_text(env.read_text().replace("tabulate==0.9.0", "tabulate==0.8.10").replace("      - six==1.17.0\n", "")
                   + "      - attrs==26.1.0\n")
    prefix = tmp_path / "envs-built" / "small"
    with pytest.raises(envs.EnvError) as e:
        env_build.build("small", env, prefix, wheelhouse_dir=wh, log=lambda m: None)
    msg = str(e.value)
    assert "tabulate: tabulate==0.9.0 in the wheelhouse, tabulate==0.8.10 in the env file" in msg
    assert "six: in the wheelhouse (pip six==1.17.0), not in the env file" in msg
    assert "attrs: in the env file (pip attrs==26.1.0), not in the wheelhouse" in msg
    assert "python -m llmbench wheelhouse small" in msg
    assert not prefix.exists()  # refused before anything was made
    # a comment or spacing edit keeps the requirements hash: the same wheelhouse is accepted
    (tmp_path / "again").mkdir()
    again = _fake_wheelhouse(tmp_path / "again", env)
    env.write_text("# reworded\n" + env.read_text().replace("tabulate==0.8.10", "tabulate == 0.8.10"))
    assert wheelhouse.differences(wheelhouse.load(again), envs.parse(env)) == []


def test_a_missing_wheelhouse_or_provided_package_is_named(tmp_path):
    with pytest.raises(wheelhouse.WheelhouseError, match=r"no wheelhouse manifest; make one with `python -m llmbench wheelhouse"):
        wheelhouse.load(tmp_path)
    manifest = {"provided": {"torch": "2.11.0+cu130"}}
    with pytest.raises(envs.EnvError, match="leaves out torch as provided.*set software_envs.provided_python"):
        offline.check_provided(manifest, {}, None)
    with pytest.raises(envs.EnvError, match=r"torch: the wheelhouse expects 2.11.0\+cu130, /py has 2.13.0"):
        offline.check_provided(manifest, {"packages": {"Torch": "2.13.0"}}, "/py")


def test_software_envs_settings_are_checked_naming_the_key(tmp_path):
    cfg = {"software_envs": {"backend": "none", "wheelhouse": "wh", "provided_python": str(tmp_path / "nope")}}
    found = config_check._software_env_problems(cfg, tmp_path)
    assert any(p.startswith("software_envs.wheelhouse applies to backend venv only") for p in found)
    assert any(p.startswith("software_envs.wheelhouse = 'wh': no such folder") for p in found)
    assert any(p.startswith(f"software_envs.provided_python = '{tmp_path / 'nope'}': not an executable") for p in found)
    (tmp_path / "wh").mkdir()
    ok = {"software_envs": {"backend": "venv", "wheelhouse": "wh", "provided_python": sys.executable}}
    assert config_check._software_env_problems(ok, tmp_path) == []
    assert plan.env_build_flags(ok, "hf") == f"--wheelhouse wh/hf --provided-python {sys.executable}"
    assert plan.env_build_flags({}, "hf") == ""


# --------------------------------------------------------------------------- a real offline env build

def _provided_file(tmp_path: Path, names: list[str]) -> Path:
    """This interpreter's versions of ``names``: what the env will see through provided_python."""
    f = tmp_path / "provided.txt"
    f.write_text("".join(f"{n}=={importlib.metadata.version(n)}\n" for n in names))
    return f


@pytest.mark.slow
def test_env_built_from_a_wheelhouse_with_every_index_closed(tmp_path, monkeypatch):
    """Made here (with network): python-dateutil (and its six) and the checkout, for this python and machine,
    with pandas, pyarrow and numpy provided by this interpreter. Built with --no-index and an unreachable index
    in UV_INDEX_URL / PIP_INDEX_URL (and no pip config): a download would fail the build."""
    env = _env_file(tmp_path, SMALL.format(python=PY))
    provided = _provided_file(tmp_path, ["pandas", "pyarrow", "numpy"])
    made = []
    manifest = wheelhouse.make(env, tmp_path / "wh", PY, wheelhouse.this_platform(), provided,
                               base_dir=REPO / "envs", log=made.append)
    names = {w["file"].split("-")[0].lower() for w in manifest["wheels"]}
    assert {"python_dateutil", "six", "llmbench", "setuptools", "pip"} <= names
    assert not names & {"pandas", "pyarrow", "numpy"}, names
    assert {n: manifest["left_out"][n] for n in ("pandas", "numpy")} == {
        n: f"provided ({importlib.metadata.version(n)})" for n in ("pandas", "numpy")}
    assert manifest["requirements_hash"] == envs.requirements_hash(env)
    assert manifest["total_bytes"] == sum((tmp_path / "wh" / w["file"]).stat().st_size for w in manifest["wheels"])
    assert any(line.endswith("MB in all") for line in made)

    for var in ("UV_INDEX_URL", "PIP_INDEX_URL", "UV_DEFAULT_INDEX"):
        monkeypatch.setenv(var, UNREACHABLE)
    for var in ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "UV_FIND_LINKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    prefix = tmp_path / "built" / "small"
    info = env_build.build("small", env, prefix, base_dir=REPO / "envs", wheelhouse_dir=tmp_path / "wh",
                      provided_python=sys.executable, log=lambda m: None)
    assert info["source"]["index"] == "wheelhouse" and info["source"]["provided_python"] == sys.executable
    assert info["provided"]["left_out_of_wheelhouse"] == wheelhouse.read_provided(provided)
    assert "python-dateutil==2.9.0.post0" in info["pip_freeze"]
    code = "import dateutil, pandas, llmbench, json; print(json.dumps([dateutil.__file__, pandas.__file__, llmbench.__file__]))"
    own, seen, harness = json.loads(subprocess.run([str(prefix / "bin" / "python"), "-c", code], capture_output=True,
                                                   text=True, check=True).stdout)
    assert own.startswith(str(prefix))                                   # from the wheelhouse, into the env
    assert seen.startswith(sysconfig.get_paths()["purelib"])             # provided: this interpreter's pandas
    assert harness == str(REPO / "workflow/llmbench/__init__.py")        # the checkout, editable

    # up to date as long as the wheelhouse and the interpreter are the same; without them it is rebuilt
    assert env_build.build("small", env, prefix, base_dir=REPO / "envs", wheelhouse_dir=tmp_path / "wh",
                      provided_python=sys.executable, log=lambda m: None)["built_at"] == info["built_at"]
    assert offline.recorded_source(info) != offline.source(None, None)
