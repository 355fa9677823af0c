"""The engine contract's hooks are declared once (core/engine.py): a misspelt hook is an error when its module
is imported, and the contract test discovers every engine's cases from the registry (no table to edit)."""

from __future__ import annotations

import types

import pytest

from llmbench import artifacts, engines
from llmbench.core.engine import ContractCase, Engine, MODULE_HOOKS, has_hook
from llmbench.core import registry

from conftest import REPO


class _Complete(Engine):
    def load(self, artifact_dir, manifest, options): ...
    def encode(self, prompt): ...
    def decode(self, token_ids): ...
    def generate(self, input_ids, max_new_tokens, on_token): ...
    def reset_peak_memory(self): ...
    def peak_memory(self): ...


def test_a_misspelt_adapter_hook_is_an_error_at_class_creation():
    with pytest.raises(TypeError, match="log_prob is not a hook: did you mean log_probs"):
        type("Typo", (_Complete,), {"log_prob": lambda self, ids: None})
    with pytest.raises(TypeError, match="helper .*private"):
        type("Helper", (_Complete,), {"helper": lambda self: None})
    ok = type("Ok", (_Complete,), {"score": lambda self, ids: ([], []), "_helper": lambda self: None,
                                   "tokenizer": None})  # state may be public, helpers are private
    assert has_hook(ok, "score") and not has_hook(ok, "log_probs") and not has_hook(_Complete, "close")


def test_optional_hooks_are_declared_on_the_base_class():
    declared = {n for n in vars(Engine) if not n.startswith("_")}
    assert {"score", "log_probs", "tokenize_plain", "count_tokens", "close"} <= declared
    assert all(getattr(Engine, h) is None for h in ("score", "log_probs", "tokenize_plain", "count_tokens", "close"))


def test_a_misspelt_module_hook_is_an_error_when_the_registry_loads_it():
    mod = types.ModuleType("llmbench_typo_engine")
    mod.ENV_BY_DEVICES = {"cpu": "hf"}
    mod.Accepts = ("hf",)
    mod.tokenizer_dirs = lambda artifact_dir, manifest: artifact_dir
    mod.tokenizer_dirs.__module__ = mod.__name__
    problems = registry.hook_problems(mod, "llmbench.engines")
    assert len(problems) == 3, problems
    assert any("ENV_BY_DEVICES is not a hook: did you mean ENV_BY_DEVICE" in p for p in problems)
    assert any("Accepts is not a hook: did you mean ACCEPTS" in p for p in problems)
    art = types.ModuleType("llmbench_typo_method")
    art.FORMATS = "hf"
    assert registry.hook_problems(art, "llmbench.artifacts") == [
        "llmbench_typo_method.FORMATS is not a hook: did you mean FORMAT? (hooks: core/engine.py)"]


def test_every_built_in_module_passes_the_hook_check_and_every_adapter_subclasses_engine():
    for name in engines.names():
        mod = engines.module(name)  # the registry checks the hooks as it loads the module
        adapter = getattr(mod, "ADAPTER", None)
        assert adapter is None or issubclass(adapter, Engine), name
    for method in artifacts.methods():
        artifacts.module(method)
    assert "CONTRACT" in MODULE_HOOKS


def test_every_module_hook_the_harness_reads_is_declared():
    """A module-level name the harness looks up on an engine module (engines/__init__.py, serving/job.py:
    ``getattr(mod, "launcher", None)``, ``hasattr(mod, "endpoint")``) is a hook, so MODULE_HOOKS declares it
    (the registry's misspelling check knows it only from there)."""
    import re

    read = set()
    for path in ("engines/__init__.py", "serving/job.py"):
        text = (REPO / "workflow/llmbench" / path).read_text()
        read |= set(re.findall(r"(?:getattr|hasattr)\((?:mod|module\(name\)), \"(\w+)\"", text))
    assert {"launcher", "placement", "env_for", "endpoint", "launcher_problem"} <= read
    assert sorted(read - set(MODULE_HOOKS)) == []


def test_every_in_process_engine_declares_its_contract_cases():
    """The contract test (test_engine_contract.py) runs the cases each engine declares: an engine with an
    ADAPTER says which (``CONTRACT = ()`` where none can run, with the reason beside it)."""
    for name in engines.names():
        mod = engines.module(name)
        if getattr(mod, "ADAPTER", None) is not None:
            assert hasattr(mod, "CONTRACT"), f"engine {name}: declare CONTRACT (core/engine.py ContractCase)"
            assert all(isinstance(c, ContractCase) for c in mod.CONTRACT), name
