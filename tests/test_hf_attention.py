"""HF attention and quantization options as variants (the speed-up study's SDPA backends and FA2, the latency
study's bitsandbytes lines): a forced SDPA backend is what every forward of the line runs with, or the line is
unverified with torch's own reason; flash_attention_2 without the flash-attn package is refused rather than
silently swapped for a hub kernel; bitsandbytes variants run in their own env. On the embedded model, CPU."""

from __future__ import annotations

import importlib.util

import pytest

from llmbench import engines
from llmbench.core.engine import EngineUnavailable

torch = pytest.importorskip("torch")

BASE = {"device": "cpu", "dtype": "float32", "attn_implementation": "sdpa", "num_threads": 2}


@pytest.fixture(scope="module")
def load(embedded_model_dir):
    from llmbench.provenance import manifest

    def get(**options):
        eng = engines.create("hf")
        eng.loaded = eng.load(embedded_model_dir, manifest.verify(embedded_model_dir, quick=True),
                              engines.resolved("hf", {**BASE, **options}))
        return eng

    return get


def _sdpa_backends_seen(eng, ids, n=4):
    """The SDPA kernels torch dispatched to during one generate, read from the profiler's op names."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        eng.generate(ids, n, lambda t: None)
    names = {e.key for e in prof.key_averages()}
    return {n for n in names if "scaled_dot_product" in n}


def test_a_forced_math_backend_is_what_every_forward_runs(load):
    """math on CPU: the line runs, the row says forced math, and the profiler sees only the math kernel
    (unforced SDPA on CPU takes its flash kernel for these shapes)."""
    free = load()
    ids = free.encode("Write a haiku about the sea.")
    assert free.runtime["sdpa_backend"] == "torch's choice per call (not observed)"
    assert any("flash" in n for n in _sdpa_backends_seen(free, ids)), "unforced CPU SDPA no longer picks flash"
    forced = load(sdpa_backend="math")
    assert forced.runtime["sdpa_backend"] == "math (forced)"
    seen = _sdpa_backends_seen(forced, ids)
    assert seen and not any("flash" in n for n in seen), seen
    assert len(forced.generate(ids, 16, lambda t: None).ids) == 16


@pytest.mark.parametrize("backend", ["cudnn", "efficient"])
def test_a_backend_that_cannot_run_here_makes_the_line_unverified_with_torchs_reason(load, backend):
    """cuDNN and memory-efficient attention have no CPU kernel: the load probe fails with torch's words."""
    with pytest.raises(EngineUnavailable, match=rf"SDPA backend {backend} cannot run here \(cpu, float32\): "):
        load(sdpa_backend=backend)


def test_sdpa_backend_needs_sdpa():
    with pytest.raises(ValueError, match="sdpa_backend applies to attn_implementation sdpa only"):
        engines.resolved("hf", {**BASE, "attn_implementation": "eager", "sdpa_backend": "math"})
    with pytest.raises(ValueError, match="sdpa_backend"):
        engines.resolved("hf", {**BASE, "sdpa_backend": "fa3"})


def test_flash_attention_2_without_flash_attn_is_refused_not_substituted(load):
    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    with pytest.raises(EngineUnavailable, match="flash_attention_2 needs the flash-attn package"):
        load(attn_implementation="flash_attention_2")


def test_bitsandbytes_variants_run_in_the_bnb_env_and_others_in_hf():
    assert engines.env("hf", BASE) == "hf"
    assert engines.env("hf", {**BASE, "quantization": "bnb-nf4"}) == "hf-bnb"
    assert engines.env("hf", {**BASE, "quantization": "bnb-int8"}) == "hf-bnb"
    with pytest.raises(ValueError, match="quantization"):
        engines.resolved("hf", {**BASE, "quantization": "gptq"})


def test_bnb_config_follows_the_options():
    pytest.importorskip("transformers")
    from llmbench.engines.hf import _bnb_config

    nf4 = _bnb_config(torch, engines.resolved("hf", {**BASE, "quantization": "bnb-nf4"}))
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_compute_dtype == torch.float32
    bf16 = _bnb_config(torch, engines.resolved("hf", {**BASE, "quantization": "bnb-nf4", "bnb_4bit_compute_dtype": "bfloat16"}))
    assert bf16.bnb_4bit_compute_dtype == torch.bfloat16
    assert _bnb_config(torch, engines.resolved("hf", {**BASE, "quantization": "bnb-int8"})).load_in_8bit
