"""One declaration per option/param (core/options.py; docs by planning/options.py): resolving, the config check built on it, the engine x
artifact format check, and docs/options.md generated from the declarations."""

import copy

import pytest
import yaml

from conftest import REPO
from llmbench import artifacts, engines
from llmbench.planning import config as llmbench_config
from llmbench.core import registry
from llmbench.core.options import Option, REQUIRED, at_least, resolve
from llmbench.planning.options import markdown_doc

DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())
SPEC = {
    "device": Option(str, "cpu", "where", choices=("cpu", "cuda")),
    "threads": Option((int, None), None, "threads", check=at_least(1)),
    "kv_gib": Option(int, 2, "CPU cache", when={"device": ("cpu",)}),
    "kind": Option(str, REQUIRED, "must be given", choices=("a", "b")),
}


def test_resolve_fills_defaults_and_reports_every_problem():
    values, found = resolve(SPEC, {"kind": "a"}, where="x", owner="option of engine e")
    assert (values, found) == ({"device": "cpu", "threads": None, "kv_gib": 2, "kind": "a"}, [])
    _, found = resolve(SPEC, {"device": "tpu", "threads": 0, "thread": 1}, where="x", owner="option of engine e")
    assert found == ["x.thread: unknown option of engine e; allowed options are device, threads, kv_gib, kind",
                     "x.device = 'tpu': allowed values are cpu, cuda", "x.threads = 0: expected a value >= 1",
                     "x.kind: required; allowed values are a, b"]
    assert resolve(SPEC, {"kind": "a", "threads": True}, where="x", owner="o")[1] == ["x.threads = True: expected int or null"]


def test_an_option_that_does_not_apply_is_null_and_cannot_be_set():
    values, found = resolve(SPEC, {"kind": "b", "device": "cuda"}, where="x", owner="o")
    assert values["kv_gib"] is None and found == []
    _, found = resolve(SPEC, {"kind": "b", "device": "cuda", "kv_gib": 4}, where="x", owner="o")
    assert found == ["x.kv_gib = 4: applies to device cpu only"]


def test_cross_field_checks_run_on_resolved_values_only_when_each_value_is_valid():
    rule = [lambda o: "threads needs cuda" if o["threads"] and o["device"] != "cuda" else None]
    assert resolve(SPEC, {"kind": "a", "threads": 2}, where="x", owner="o", checks=rule)[1] == ["x: threads needs cuda"]
    assert resolve(SPEC, {"kind": "c", "threads": 2}, where="x", owner="o", checks=rule)[1] == [
        "x.kind = 'c': allowed values are a, b"]


def test_every_builtin_declares_options_params_and_formats():
    formats = {artifacts.module(m).FORMAT for m in registry.builtin_names(artifacts.PACKAGE)}
    for name in registry.builtin_names(engines.PACKAGE):
        mod = engines.module(name)
        assert registry._declaration_problems(mod, "OPTIONS") == [], name
        assert set(mod.ACCEPTS) <= formats, name
        # every default is itself allowed; only options without a default (a remote endpoint's url) are asked for
        assert all(": required;" in p for p in engines.resolve(name, {})[1]), name
    for method in registry.builtin_names(artifacts.PACKAGE):
        mod = artifacts.module(method)
        assert registry._declaration_problems(mod, "PARAMS") == [], method
        for key, opt in mod.PARAMS.items():
            assert opt.default is REQUIRED or opt.problem(opt.default) is None, (method, key)


def test_an_engine_on_an_artifact_format_it_cannot_load_stops_at_config_time():
    cfg = copy.deepcopy(DEFAULT)
    assert llmbench_config.problems(cfg, REPO) == []
    cfg["benchmarks"].append({"models": ["smollm2-135m"], "artifacts": ["q4_1-dequant-fp32", "ct2-int8"],
                              "variants": ["llamacpp-cpu"], "scenarios": ["latency"]})
    i = len(cfg["benchmarks"]) - 1
    assert llmbench_config.problems(cfg, REPO) == [
        f"benchmarks[{i}]: variant 'llamacpp-cpu' (engine llamacpp) cannot load artifact 'q4_1-dequant-fp32': its "
        "format is hf (method reference), engine llamacpp accepts gguf",
        f"benchmarks[{i}]: variant 'llamacpp-cpu' (engine llamacpp) cannot load artifact 'ct2-int8': its format "
        "is ct2 (method ct2), engine llamacpp accepts gguf"]


def test_jobs_get_complete_values():
    opts = llmbench_config.resolved_options(DEFAULT, "vllm-cpu")
    assert set(opts) == set(engines.options_spec("vllm")) and opts["tensor_parallel_size"] == 1
    params = llmbench_config.resolved_params(DEFAULT, "openvino-int8")
    assert params == {"weight_format": "int8", "sym": False, "group_size": None, "ratio": None,
                      "group_size_fallback": None}
    with pytest.raises(ValueError, match="engine hf: options.nope: unknown option of engine hf"):
        engines.resolved("hf", {"nope": 1})


def test_docs_match_the_declarations():
    assert (REPO / "docs/options.md").read_text() == markdown_doc(), (
        "docs/options.md is out of date: `python -m llmbench options-doc --out docs/options.md`")


def test_resolving_resolved_options_changes_nothing_even_where_an_option_does_not_apply():
    """vLLM's kv_cache_space_gib applies to the CPU only: resolved for cuda it is null, and resolving that again
    (what a job's placement does with the spec's resolved options) must not call the null a wrong type."""
    from llmbench import engines

    once = engines.resolved("vllm", {"device": "cuda", "dtype": "float16"})
    assert once["kv_cache_space_gib"] is None and engines.resolved("vllm", once) == once
    assert engines.placement("vllm", once).gpus == 1
    with pytest.raises(ValueError, match="kv_cache_space_gib = None"):
        engines.resolved("vllm", {"device": "cpu", "kv_cache_space_gib": None})
