"""Adding a tool as a plugin package, following docs/adding-a-tool.md literally (its snippets are the input)."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import NEW_TOKENS, REPO, clone, planned, small_config, snakemake, write_yaml

pytestmark = pytest.mark.workflow
GUIDE = REPO / "docs/adding-a-tool.md"


def guide_files() -> dict[str, str]:
    """Code blocks of the guide annotated with ```lang file=PATH."""
    return {m[1]: m[2] for m in re.finditer(r"```\w+ file=(\S+)\n(.*?)```", GUIDE.read_text(), re.S)}


def install_plugin(tmp_path, edit=lambda files: files) -> dict:
    """Write the guide's plugin package (optionally edited), pip-install it into its own target dir and
    return the env that makes the job's interpreter see it."""
    files = edit(dict(guide_files()))
    src = tmp_path / "src"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src / "llmbench-plainloop")], check=True)
    # in front of, not instead of, a PYTHONPATH the run already has (e.g. a checkout's workflow/ dir)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def with_plugin_variant(wd):
    cfg = small_config()
    cfg["variants"].update(yaml.safe_load(guide_files()["plainloop.yaml"])["variants"])
    cfg["benchmarks"][0]["variants"].append("plainloop-cpu")
    write_yaml(wd / "config/config.yaml", cfg)


def test_guide_has_the_plugin_files():
    assert {"llmbench-plainloop/pyproject.toml", "llmbench-plainloop/llmbench_plainloop/engine.py",
            "plainloop.yaml"} <= set(guide_files())


def test_plugin_from_the_guide_plans_only_its_jobs_then_produces_rows(finished_workflow, tmp_path):
    env = install_plugin(tmp_path)
    wd = clone(finished_workflow, tmp_path / "wd")
    with_plugin_variant(wd)
    assert planned(wd, env=env) == {"benchmark": 1, "merge_tables": 1, "plots": 1, "report_tables": 1, "all": 1}
    snakemake(wd, env=env)
    req = pd.read_parquet(wd / "results/tables/requests.parquet")
    mine = req[req["variant"] == "plainloop-cpu"]
    # warmup: all (each of the 9 prompts once, flagged) then `repeats` measured passes
    repeats = small_config()["scenarios"]["latency"]["repeats"]
    assert mine["warmup"].sum() == 9 and (~mine["warmup"]).sum() == 9 * repeats
    assert (mine["output_tokens"] == NEW_TOKENS).all() and mine["success"].all()
    assert set(req["variant"]) == {"hf-sdpa", "hf-eager", "plainloop-cpu"}
    # a plain greedy loop over the same fp32 weights produces the reference's tokens
    summary = pd.read_parquet(wd / "results/tables/latency.parquet").set_index("variant")
    assert summary.loc["plainloop-cpu", "greedy_agreement"] == 1.0


def _replace(path, old, new):
    def edit(files):
        assert old in files[path]
        files[path] = files[path].replace(old, new)
        return files
    return edit


ENGINE = "llmbench-plainloop/llmbench_plainloop/engine.py"
PYPROJECT = "llmbench-plainloop/pyproject.toml"


@pytest.mark.parametrize("edit, expected", [
    (_replace(ENGINE, "    def generate(self, input_ids, max_new_tokens, on_token):", "    def generat(self, input_ids, max_new_tokens, on_token):"),
     "generat is not a hook: did you mean generate?"),  # a misspelt method is refused at import (core/engine.py)
    (_replace(ENGINE, "    def generate(self, input_ids, max_new_tokens, on_token):", "    def generate(self, input_ids, on_token):"),
     "ADAPTER.generate(self, input_ids, on_token): expected 3 arguments"),
    (_replace(ENGINE, '"""A plain greedy decode loop', 'import no_such_module_xyz\n"""A plain greedy decode loop'),
     "cannot be imported: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    (_replace(ENGINE, "ADAPTER = PlainLoopEngine", "Adapter = PlainLoopEngine"),
     "module defines no ADAPTER"),
    (_replace(PYPROJECT, 'plainloop = "llmbench_plainloop.engine"', 'hf = "llmbench_plainloop.engine"'),
     "its name clashes with the built-in engine 'hf'"),
], ids=["missing-method", "signature", "import-error", "no-adapter", "name-clash"])
def test_broken_plugin_stops_before_any_job(finished_workflow, tmp_path, edit, expected):
    env = install_plugin(tmp_path, edit)
    wd = clone(finished_workflow, tmp_path / "wd")
    with_plugin_variant(wd)
    before = sorted(p.stat().st_mtime_ns for p in (wd / "results").rglob("*.parquet"))
    proc = snakemake(wd, check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in out and "package llmbench-plainloop" in out, out[-3000:]
    assert "rule benchmark" not in out
    assert sorted(p.stat().st_mtime_ns for p in (wd / "results").rglob("*.parquet")) == before
