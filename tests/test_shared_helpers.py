"""Pieces engines and builders share: formats/ instead of imports across, one synthetic refusal, fd capture,
process-tree RSS. Quick: no engine library is imported."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbench import artifacts
from llmbench.engines._native_output import capture_fd
from llmbench.formats import gguf, mlc, openvino
from llmbench.core import memory

from conftest import REPO

PACKAGE = REPO / "workflow/llmbench"


def _imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("path", sorted((PACKAGE / "engines").glob("*.py")), ids=lambda p: p.name)
def test_engines_import_no_builder(path):
    assert not [m for m in _imported(path) if m.startswith(("llmbench.artifacts", "..artifacts"))]


@pytest.mark.parametrize("path", sorted((PACKAGE / "formats").glob("*.py")), ids=lambda p: p.name)
def test_formats_import_neither_side(path):
    assert not [m for m in _imported(path) if m.startswith(("llmbench.artifacts", "llmbench.engines", ".."))]


@pytest.mark.parametrize("method, params", [("gguf", {"type": "Q8_0"}), ("ct2", {}), ("openvino", {}), ("mlc", {}),
                                            ("gptq", {}), ("awq", {})])
def test_every_builder_refuses_synthetic_weights_alike(method, params, tmp_path):
    synthetic = {"synthetic": {"preset": "tiny-llama", "seed": 0}}
    with pytest.raises(artifacts.SyntheticWeightsRefused, match=rf"^artifact method {method} needs real weights "
                       r"\(.+\); this model is synthetic \(random weights drawn at load time, for speed runs only"):
        artifacts.module(method).build(tmp_path / "model", synthetic, params, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_format_facts_for_manifests_with_and_without_the_field():
    assert gguf.file_type_name(15) == "Q4_K_M" and gguf.file_type_name(None) is None
    assert gguf.file_type_name(99) == "99"  # a type newer than the table still shows up
    assert mlc.compiled_for({"device": "cuda", "params": {}}) == "cuda"
    assert mlc.compiled_for({"params": {"device": "vulkan"}}) == "vulkan" and mlc.compiled_for({}) == "cpu"
    m = {"compression": {"applied": None}, "weight_constants_by_type": {"f32": {"constants": 1, "elements": 2048}}}
    assert openvino.recorded_ir_facts(m, Path("/no/such.xml")) == {
        "nncf_weight_compression": None, "weight_constants_by_type": m["weight_constants_by_type"]}


@pytest.mark.parametrize("fd", [1, 2])
def test_capture_fd_gets_what_a_native_library_writes(fd):
    before = os.fstat(fd)
    result, text = capture_fd(fd, lambda: (os.write(fd, b"native\n"), 7)[1])  # as C++ writes: past sys.std*
    assert result == 7 and text == "native\n"
    after = os.fstat(fd)  # the descriptor points where it did before
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_tree_peak_rss_counts_child_processes():
    code = "import sys; b = bytearray(200 * 2**20); print('ready', flush=True); sys.stdin.read()"
    memory.reset_tree_peak_rss()
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        tree, own = memory.tree_peak_rss_bytes(), memory.peak_rss_bytes()
    finally:
        child.communicate("")
    assert tree - own >= 200 * 2**20
