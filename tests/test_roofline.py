"""Bytes per decode step, defined once (roofline.decode_bytes), and the roofline/MBU figures built on them."""

import math

import pandas as pd
import pytest

from llmbench.core import roofline
from llmbench.analysis import tables
from llmbench.core.engine import Placement
from llmbench.job import bench

# SmolLM2-135M in fp32: 538 MB of weights, a tied 49152 x 576 embedding table, 30 layers x 3 KV heads x 64
EMB, ROW, KV = 49152 * 576 * 4, 576 * 4, 30 * 2 * 3 * 64 * 4


def test_tied_embedding_table_is_read_in_full_untied_only_the_gathered_row():
    # tied (lm_head = embed_tokens): nothing is taken off; + KV at 300 tokens of context
    assert roofline.decode_bytes(538_060_288, EMB, ROW, True, KV, 300) == 538_060_288 + KV * 300
    # untied: the table is read only by the gather, one row per step
    untied = roofline.decode_bytes(538_060_288 + EMB, EMB, ROW, False, KV, 300)
    assert untied == 538_060_288 + ROW + KV * 300
    assert KV == 46080  # layers x 2 x kv_heads x head_dim x 4 bytes
    assert roofline.kv_bytes_per_token({"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                                        "hidden_size": 576}, 4) == KV


def test_a_missing_part_gives_no_figure_not_a_guess():
    assert roofline.decode_bytes(1000, 100, 1, True, None, 10) is None
    assert roofline.decode_bytes(1000, None, None, None, 8, 10) is None


def test_mean_decode_context():
    # 40 prompt tokens, 200 new: the steps yielding tokens 2..200 attend to 41..239 tokens
    assert roofline.decode_context(40, 200) == sum(40 + k - 1 for k in range(2, 201)) / 199 == 140


def test_tensor_parallel_mbu_counts_every_gpus_bandwidth():
    """TP=2: 13.5 GB over two H200 (4.28 TB/s measured on one), 100 tok/s: each GPU reads its 6.75 GB shard."""
    share = roofline.mbu(13.5e9, 100, 4.28e12, 2)
    assert share == pytest.approx(0.1577, abs=1e-4)  # one GPU's bandwidth alone gave 0.315, 2x too high
    assert roofline.roofline_tokens_per_s(4.28e12, 2, 13.5e9) == pytest.approx(634.1, abs=0.1)
    assert roofline.datasheet("NVIDIA H200")[0] == 4.8e12 and "datasheet" in roofline.datasheet("NVIDIA H200")[1]
    assert roofline.datasheet("NVIDIA H100 80GB HBM3")[0] == 3.35e12
    assert roofline.datasheet("AMD EPYC 7B13") is None


def test_the_probe_reads_like_the_engine_ran(monkeypatch):
    """TP GPUs are read in parallel; on the CPU the probe takes the threads the engine reported (Loaded), not the
    options' (vLLM's CPU worker computed on 1 core where the options said 2), on the CPUs its workers were seen on;
    an engine that reported no thread count is flagged."""
    from llmbench.core.engine import Loaded
    from llmbench.job import bandwidth

    seen = []
    monkeypatch.setattr(bandwidth.roofline, "read_bandwidth", lambda d, **kw: (seen.append((d, kw)) or 1.0, "x"))
    monkeypatch.setattr(bench, "_has_cuda", lambda: True)
    gpu = bench._probe(Placement("cuda", gpus=4), Loaded("0", "cuda:0", "H200", weight_bytes=1))
    gpu.measure()
    assert gpu.columns()["devices"] == 4 and seen[-1] == ("cuda", {})
    import os
    mine = sorted(os.sched_getaffinity(0))
    one = Loaded("0", "cpu", "cpu", weight_bytes=1, threads=1, runtime={"workers": [{"thread_cpus": mine}]})
    probe = bench._probe(Placement("cpu", cpu_threads=2), one)
    probe.measure(), probe.measure()
    got = probe.columns()
    assert seen[-1] == ("cpu", {"threads": 1}) and got["threads"] == 1 and got["flag"] == ""
    assert got["probes"] == [1.0, 1.0] and "the engine's workers" in got["bandwidth"][1]
    silent = bench._probe(Placement("cpu", cpu_threads=2), Loaded("0", "cpu", "cpu", weight_bytes=1))
    assert "reported no thread count: probed with 2 threads" in silent.flag()


def test_lines_that_ran_alike_share_one_bandwidth_figure():
    """Two jobs of one machine and probe: both lines' limits divide by the median of all four probes."""
    from llmbench.analysis import pooled_bandwidth

    rows = pd.concat([_rows(13.5e9, 1 / 150).assign(variant=v, run_id=v, bandwidth_probes=[p] * 3, bandwidth_threads=2,
                                                     bandwidth_cpus="0,1")
                      for v, p in (("a", [40e9, 44e9]), ("b", [48e9, 50e9]))], ignore_index=True)
    pooled = pooled_bandwidth.pool(rows)
    assert (pooled["pooled_bandwidth"] == 46e9).all() and (pooled["pooled_jobs"] == 2).all()
    lines = tables.summarize(rows)
    assert lines["roofline_tokens_per_s"].nunique() == 1 and (lines["read_bandwidth_bytes_per_s"] == 46e9).all()
    assert lines["bandwidth_spread"].iloc[0] == pytest.approx(10e9 / 46e9)


def test_cpu_probe_uses_the_engines_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    used = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (used.append(n), real(n)))
    _, how = roofline.read_bandwidth("cpu", gib=0.01, reps=1, threads=1)
    assert used[0] == 1 and "1 threads (the engine's threads)" in how
    import os
    _, how = roofline.read_bandwidth("cpu", gib=0.01, reps=1)
    assert used[2] == os.cpu_count() and "all cores" in how


def _rows(weight_bytes, tpot, device="NVIDIA H200", devices=1):
    return pd.DataFrame([{
        "model": "m", "artifact": "a", "engine": "e", "variant": "v", "scenario": "s", "warmup": False, "repeat": 0,
        "success": True, "status": "verified", "device_name": device, "synthetic_weights": False, "error": "",
        "latency_s": 1.0, "output_tokens": 10, "ttft_s": 0.1, "tpot_s": tpot, "peak_memory_bytes": 1,
        "artifact_bytes": 99, "weight_bytes": weight_bytes, "decode_bytes": weight_bytes, "ran_as": "dense fp16",
        "threads": None, "read_bandwidth_bytes_per_s": 4e12, "bandwidth_devices": devices, "memory_kind": "k",
        "host": "{}", "runtime": "{}", "artifact_hash": "h", "git_commit": "g"} for _ in range(3)])


def test_mbu_over_100_percent_is_flagged_never_shown():
    line = tables.summarize(_rows(13.5e9, 1 / 400)).iloc[0]  # 400 tok/s x 13.5 GB > 4 TB/s: impossible
    assert math.isnan(line["mbu"]) and line["mbu_flag"] == roofline.MBU_FLAG and math.isnan(line["mbu_datasheet"])
    md = tables.to_markdown(tables.add_quality(tables.summarize(_rows(13.5e9, 1 / 400)), _rows(1, 1), [], {}))
    assert "MBU >100%: check weight bytes" in md and "135%" not in md


def test_mbu_against_measured_and_datasheet_bandwidth():
    line = tables.summarize(_rows(13.5e9, 1 / 150)).iloc[0]
    assert line["mbu"] == pytest.approx(13.5e9 * 150 / 4e12) and line["mbu_flag"] == ""
    assert line["mbu_datasheet"] == pytest.approx(13.5e9 * 150 / 4.8e12)
    assert line["weight_bytes"] == 13.5e9 and line["artifact_bytes"] == 99  # size as run beside size on disk
    md = tables.to_markdown(tables.add_quality(tables.summarize(_rows(13.5e9, 1 / 150)), _rows(1, 1), [], {}))
    assert "51% (42% of datasheet)" in md and "ran as" in md and "dense fp16" in md
    tp = tables.summarize(_rows(13.5e9, 1 / 150, devices=2)).iloc[0]
    assert tp["mbu"] == pytest.approx(line["mbu"] / 2)
    cpu = tables.summarize(_rows(13.5e9, 1 / 150, device="AMD EPYC")).iloc[0]
    assert math.isnan(cpu["mbu_datasheet"])


def test_hf_says_a_decompressed_checkpoint_ran_dense():
    """HF on CPU unpacks compressed-tensors GPTQ/AWQ to dense Linear at the first forward: the line must say
    it timed dense floats, not the 4-bit method its artifact name suggests."""
    torch = pytest.importorskip("torch")
    from llmbench.engines.hf import _ran_as

    class Config:
        quantization_config = {"quant_method": "compressed-tensors", "format": "pack-quantized"}

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = Config()
            self.q = torch.nn.Linear(4, 4)

    model = Model()
    assert _ran_as(model) == "dense fp32 after decompression (compressed-tensors)"
    model.q.weight_packed = torch.nn.Parameter(torch.zeros(4, 1, dtype=torch.int32), requires_grad=False)
    assert _ran_as(model).startswith("compressed-tensors packed int32 weights (Linear)")
    model.config.quantization_config = None
    del model.q.weight_packed
    assert _ran_as(model.to(torch.bfloat16)) == "dense bf16"


def test_ct2_weights_as_run_at_another_compute_type():
    """model.bin saved int8; computed in float32 the matrices are dequantized at load (4 bytes each, no
    scales); the settings (rank 0) are not weights; KV from the fused QKV and output projection widths."""
    from llmbench.formats.ct2 import Variable, bytes_as_run, kv_bytes_per_token

    v = {n: Variable(n, s, t, b) for n, s, t, b in [
        ("decoder/embeddings/weight", (10, 4), "int8", 40), ("decoder/embeddings/weight_scale", (10,), "float32", 40),
        ("decoder/layer_0/self_attention/linear_0/weight", (8, 4), "int8", 32),
        ("decoder/layer_0/self_attention/linear_0/weight_scale", (8,), "float32", 32),
        ("decoder/layer_0/self_attention/linear_1/weight", (4, 4), "int8", 16),
        ("decoder/layer_0/self_attention/linear_1/weight_scale", (4,), "float32", 16),
        ("decoder/layer_0/self_attention/num_heads_kv", (), "int32", 4), ("decoder/norm/gamma", (4,), "float32", 16)]}
    assert sum(bytes_as_run(v, "int8_float32").values()) == 40 + 40 + 32 + 32 + 16 + 16 + 16
    assert sum(bytes_as_run(v, "float32").values()) == (40 + 32 + 16) * 4 + 16
    assert sum(bytes_as_run(v, "float16").values()) == (40 + 32 + 16) * 2 + 8
    assert kv_bytes_per_token(v, "int8_float32") == (8 - 4) * 4 and kv_bytes_per_token(v, "float16") == 8


def _ir(tmp_path, head):
    """A minimal IR: the int8 embedding table (+ zero point, scale) decompressed and gathered, and either
    the same table (tied) or its own lm_head constant feeding the logits MatMul."""
    layers = [(0, "Const", "self.model.embed_tokens.weight", 0, 400), (1, "Const", "self.model.embed_tokens.weight/scale", 400, 20),
              (2, "Convert", "c"), (3, "Multiply", "m"), (4, "Gather", "g"), (5, "MatMul", "logits"),
              (6, "Const", "lm_head.weight", 420, 400), (7, "Const", "shared", 0, 400)]
    edges = [(0, 2), (2, 3), (1, 3), (3, 4), (3 if head == "tied" else 6, 5)]
    xml = ["<net><layers>"]
    for l in layers:
        data = f'<data element_type="u8" shape="1" offset="{l[3]}" size="{l[4]}"/>' if l[1] == "Const" else ""
        xml.append(f'<layer id="{l[0]}" type="{l[1]}" name="{l[2]}">{data}</layer>')
    xml.append("</layers><edges>")
    xml += [f'<edge from-layer="{a}" from-port="0" to-layer="{b}" to-port="0"/>' for a, b in edges]
    (tmp_path / "m.xml").write_text("".join(xml) + "</edges></net>")
    return tmp_path / "m.xml"


def test_openvino_weight_facts_from_the_ir(tmp_path):
    from llmbench.formats.openvino import weight_facts

    tied = weight_facts(_ir(tmp_path, "tied"))
    # each .bin range once (the "shared" constant aliases the table's bytes)
    assert tied == {"weight_bytes": 820, "input_embedding_bytes": 420,
                    "embedding_name": "self.model.embed_tokens.weight", "tied": True}
    assert weight_facts(_ir(tmp_path, "own"))["tied"] is False


def test_gguf_kv_bytes_from_metadata():
    from llmbench.formats.gguf import kv_bytes_per_token

    meta = {"general.architecture": "llama", "llama.block_count": "30", "llama.attention.head_count": "9",
            "llama.attention.head_count_kv": "3", "llama.embedding_length": "576"}
    assert kv_bytes_per_token(meta, 1, 1) == 30 * 3 * (64 + 64) * 2  # f16 K and V
    assert kv_bytes_per_token(meta, 8, 1) == 30 * 3 * (64 * 34 / 32 + 64 * 2)  # q8_0 K, f16 V


def test_the_table_names_the_bandwidth_figure_and_a_probe_that_differs_from_the_run():
    rows = _rows(13.5e9, 1 / 150).assign(run_id="a", bandwidth_probes=[[40e9, 44e9]] * 3, bandwidth_threads=2,
                                         bandwidth_cpus="0,1", bandwidth_flag="the engine reported no thread count")
    md = tables.to_markdown(tables.add_quality(tables.summarize(rows), rows, [], {}))
    assert "Read bandwidth 42.0 GB/s (median of 1 job(s)' probes, spread 10%) for: e / v on a." in md
    assert "bandwidth probe ≠ run: the engine reported no thread count" in md and "verified, bandwidth probe ≠ run" in md
