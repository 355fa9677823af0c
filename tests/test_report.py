"""The report's analysis (datasheet table, prefill FLOPs, energy, cost) and its plots and HTML tables, on
summary lines built from typed rows (no workflow run: test_workflow.py runs the real one)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from llmbench.core import hardware, roofline
from llmbench.analysis import plots, report_tables, tables
from llmbench.core import energy
from llmbench.job import rows
from llmbench.core import schema
from llmbench.planning import plan

LLAMA2_7B = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 32,
             "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": False}
SMOLLM2_135M = {"num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3,
                "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True}


def test_cards_are_found_by_exact_name_only():
    assert hardware.card("NVIDIA H200").bandwidth_bytes_per_s == 4.8e12
    assert hardware.card(" nvidia h200 ").name == "NVIDIA H200"
    assert hardware.card("NVIDIA H200 NVL") is None        # another board: never read as the SXM figures
    assert hardware.card("NVIDIA L40S").bandwidth_bytes_per_s == 864e9 and hardware.card("NVIDIA L4").flops_per_s["bf16"] == 121e12
    assert hardware.card("AMD EPYC") is None and hardware.card(None) is None
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB",
                 "NVIDIA A100 80GB PCIe", "NVIDIA RTX A6000", "NVIDIA L4", "NVIDIA L40S", "NVIDIA H200"):
        c = hardware.card(name)
        assert c.source and "fp32" in c.flops_per_s and c.flops_per_s["bf16"] > c.flops_per_s["fp32"], name


def test_peak_flops_in_the_dtype_that_ran():
    assert hardware.peak_flops("NVIDIA H200", "float16")[0] == 989e12
    assert hardware.peak_flops("NVIDIA H200", "torch.bfloat16")[0] == 989e12
    assert hardware.peak_flops("NVIDIA H200", "float32")[0] == 67e12
    assert hardware.peak_flops("NVIDIA A100-SXM4-80GB", "fp8") is None      # Ampere has no FP8 tensor cores
    assert hardware.peak_flops("NVIDIA H200", None) is None and hardware.peak_flops("AMD EPYC", "float32") is None


def test_model_shape_counts_the_matmul_weights_of_known_models():
    # Llama-2-7B: 6,738,415,616 parameters = matmuls + input embedding (32000 x 4096) + 65 RMSNorm weights of 4096
    assert roofline.model_shape(LLAMA2_7B)["matmul_parameters"] == 6_738_415_616 - 32000 * 4096 - 65 * 4096
    # SmolLM2-135M (tied): 134,515,008 parameters = matmuls incl. the tied table + 61 norms of 576
    shape = roofline.model_shape(SMOLLM2_135M)
    assert shape["matmul_parameters"] == 134_515_008 - 61 * 576 and shape["head_dim"] == 64


def test_prefill_flops_are_two_per_weight_per_token_plus_attention():
    shape = roofline.model_shape(LLAMA2_7B)
    layer_weights = shape["matmul_parameters"] - 4096 * 32000
    one = roofline.prefill_flops(shape, 1)
    assert one == 2 * layer_weights + 32 * 4 * 4096 + 2 * 4096 * 32000
    t = 1000
    attention = roofline.prefill_flops(shape, t) - 2 * layer_weights * t - 2 * 4096 * 32000
    assert attention == pytest.approx(32 * 4 * 4096 * t * (t + 1) / 2)
    assert roofline.ideal_prefill_s(1e12, 1e15, 1e9, 1e12) == pytest.approx(1e-3)   # weights read: 1 ms > 1 ms? equal
    assert roofline.ideal_prefill_s(1e13, 1e15, 1e9, 1e12) == pytest.approx(1e-2)   # compute bound


def _fake_rapl(root: Path, uj: int, max_uj: int = 1000) -> None:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "energy_uj").write_text(f"{uj}\n")


def test_rapl_meter_sums_across_a_wrap(tmp_path, monkeypatch):
    _fake_rapl(tmp_path, 900)
    meter = energy.Meter("cpu", rapl_root=str(tmp_path))
    assert meter.counter is not None and "package-0" in meter.counter.method
    clock = iter([0.0, 2.0, 10.0, 14.0])
    monkeypatch.setattr(energy.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(energy.time, "sleep", lambda s: _fake_rapl(tmp_path, 950))
    meter.measure_idle(2.0)                       # 50 uJ in 2 s
    meter.begin()
    _fake_rapl(tmp_path, 150)                     # wrapped: 950 -> 1000 -> 150 = 200 uJ
    meter.end()
    got = meter.result()
    assert got.idle_power_w == pytest.approx(25e-6) and got.energy_j == pytest.approx(200e-6)
    assert got.energy_window_s == pytest.approx(4.0) and got.energy_note == ""


def test_meter_without_a_counter_says_why(tmp_path):
    meter = energy.Meter("cpu", rapl_root=str(tmp_path / "absent"))
    meter.measure_idle(5)  # returns at once: nothing to read
    meter.begin(); meter.end()
    got = meter.result()
    assert got.energy_j is None and "RAPL not readable here" in got.energy_note and "does not exist" in got.energy_note


def test_a_window_shorter_than_the_counter_period_is_not_reported(tmp_path):
    _fake_rapl(tmp_path, 0)
    meter = energy.Meter("cpu", rapl_root=str(tmp_path))
    meter.begin(); meter.end()                    # microseconds
    got = meter.result()
    assert got.energy_j is None and "shorter than" in got.energy_note


def _row(**over) -> dict:
    """A measured request row of a GPU line (every column of schema.COLUMNS)."""
    r = {c.name: None for c in schema.COLUMNS}
    r.update(request_index=0, prompt_id="p", repeat=0, warmup=False, first_of_shape=False, success=True, error="",
             input_tokens=100, requested_output_tokens=50, output_tokens=50, streamed_tokens=50, ttft_s=0.02,
             latency_s=0.52, tpot_s=0.01, tokens_per_s=50 / 0.52, itl_s=[0.01] * 49, peak_memory_bytes=1, memory_kind="k",
             output_text="", output_ids=[1] * 50, engine_metrics="{}", model="m", artifact="a", engine="hf",
             variant="v", scenario="s", status="verified", synthetic_weights=True, variant_options="{}",
             runtime=json.dumps({"dtype": "float16"}), ran_as="dense fp16", weight_bytes=int(13.5e9),
             kv_bytes_per_token=524288, decode_bytes=int(13.6e9), read_bandwidth_bytes_per_s=4e12,
             bandwidth_devices=1, model_shape=json.dumps(roofline.model_shape(LLAMA2_7B)), artifact_bytes=1,
             device_name="NVIDIA H200", host="{}", energy_j=1000.0, energy_window_s=10.0, idle_power_w=70.0,
             energy_method="NVML", energy_note="", schema_version=schema.SCHEMA_VERSION)
    r.update(over)
    return r


def _summary(rows_: list[dict], pricing=None) -> pd.DataFrame:
    df = rows.to_table(rows_).to_pandas()
    return tables.add_quality(tables.summarize(df, pricing), df, [], {})


PRICE = [{"device": "NVIDIA H200", "usd_per_hour": 3.6, "source": "https://example.org/quote", "date": "2026-12-01"}]


def test_energy_per_token_subtracts_idle_over_the_window():
    line = _summary([_row(request_index=i) for i in range(4)]).iloc[0]
    # (1000 J - 70 W x 10 s) / (4 requests x 50 tokens) = 1.5 J per token
    assert line["energy_j_per_output_token"] == pytest.approx(1.5) and line["output_tokens_per_j"] == pytest.approx(1 / 1.5)
    below = _summary([_row(energy_j=500.0)]).iloc[0]
    assert math.isnan(below["energy_j_per_output_token"]) and "not above the idle baseline" in below["energy_note"]
    cpu = _summary([_row(energy_j=None, energy_window_s=None, idle_power_w=None, energy_method="",
                         energy_note="RAPL not readable here: x")]).iloc[0]
    assert math.isnan(cpu["energy_j_per_output_token"]) and cpu["energy_note"].startswith("RAPL not readable")


def test_cost_per_million_tokens_from_the_configured_price():
    line = _summary([_row(request_index=i) for i in range(3)], PRICE).iloc[0]
    # 3.6 $/h = 0.001 $/s; 0.52 s - 0.02 s TTFT = 0.5 s of decode per 50 tokens -> 0.01 s per token -> $10 per 1M
    # output tokens; the 0.02 s of prefill are charged to the 100 input tokens only
    assert line["usd_per_1m_output_tokens"] == pytest.approx(10.0)
    assert line["usd_per_1m_input_tokens"] == pytest.approx(0.001 * 1e6 * 0.02 / 100)
    assert line["price_source"] == "https://example.org/quote" and line["price_date"] == "2026-12-01"
    tp = _summary([_row(bandwidth_devices=2)], PRICE).iloc[0]
    assert tp["usd_per_hour"] == pytest.approx(7.2) and tp["usd_per_1m_output_tokens"] == pytest.approx(20.0)
    unpriced = _summary([_row(device_name="NVIDIA L4")], PRICE).iloc[0]
    assert math.isnan(unpriced["usd_per_1m_output_tokens"]) and unpriced["price_source"] == ""


def test_prefill_mfu_against_the_datasheet_peak_in_the_dtype_that_ran():
    line = _summary([_row()]).iloc[0]
    flops = roofline.prefill_flops(roofline.model_shape(LLAMA2_7B), 100)
    assert line["prefill_flops"] == pytest.approx(flops)
    assert line["mfu_prefill"] == pytest.approx(flops / 0.02 / 989e12) and "[fp16]" in line["peak_flops_source"]
    assert line["ideal_prefill_s"] == pytest.approx(max(flops / 989e12, 13.5e9 / 4e12))
    assert line["ideal_tpot_s"] == pytest.approx(13.6e9 / 4e12)
    assert line["kv_bytes_at_context"] == 524288 * 150 and line["max_context"] == 150
    cpu = _summary([_row(device_name="AMD EPYC", runtime=json.dumps({"dtype": "float32"}))]).iloc[0]
    assert math.isnan(cpu["mfu_prefill"]) and cpu["prefill_flops"] == pytest.approx(flops)


def test_the_summary_still_fits_its_declared_columns():
    summary = _summary([_row(), _row(variant="w", request_index=1)], PRICE)
    schema.SUMMARY.from_frame(summary)  # raises on a missing or unknown column


def test_pareto_front():
    import numpy as np

    keep = plots.pareto(np.array([10, 20, 30, 15]), np.array([0.1, 0.2, 0.5, 0.3]))
    assert keep.tolist() == [True, True, True, False]   # 15 tok/s at 0.3 is beaten by 20 tok/s at 0.2


def _tables_dir(tmp_path: Path, pricing=None) -> Path:
    rs = [_row(request_index=i, ttft_s=0.02 + i / 1000) for i in range(5)]
    rs += [_row(variant="w", request_index=i, latency_s=0.8, tpot_s=0.015) for i in range(5)]
    df = rows.to_table(rs).to_pandas()
    summary = tables.add_quality(tables.summarize(df, pricing), df, [], {})
    summary.loc[summary["variant"] == "w", ["kl_mean", "ppl_ratio"]] = [0.05, 1.02]
    summary.loc[summary["variant"] == "v", ["kl_mean", "ppl_ratio"]] = [0.01, 1.01]
    out = tmp_path / "tables"
    out.mkdir()
    schema.SUMMARY.from_frame(summary).to_pandas().to_parquet(out / "latency.parquet")
    df.to_parquet(out / "requests.parquet")
    return out


def test_plots_are_drawn_as_png_and_svg_and_say_why_one_is_empty(tmp_path):
    written = plots.draw_latency(_tables_dir(tmp_path), tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == sorted(f"{n}.{f}" for n in plots.LATENCY_PLOTS for f in plots.FORMATS)
    assert set(plots.LATENCY_PLOTS) == set(plan.PLOT_CATEGORIES)
    for p in written:
        assert p.stat().st_size > 1000, p
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no price configured for NVIDIA H200" in (tmp_path / "plots/cost.svg").read_text()


def test_quality_vs_speed_names_the_lines_its_pareto_front_leaves_out(tmp_path):
    """With KL for two lines and only a PPL ratio for a third, the plot uses KL and says which line it could
    not place, instead of dropping it silently."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = _summary([_row(variant=v, request_index=i) for v in ("a", "b", "c") for i in range(3)])
    by = summary["variant"]
    summary["kl_mean"] = by.map({"a": 0.01, "b": 0.05, "c": float("nan")})
    summary["ppl_ratio"] = by.map({"a": 1.01, "b": 1.02, "c": 1.03})
    fig = plots.quality_vs_speed(plt, summary)
    text = " ".join(t.get_text() for t in fig.texts)
    assert "left out of the Pareto front (no kl_mean figure)" in text and "/ c on" in text
    assert "/ a on" not in text.split("left out")[1] and "/ b on" not in text.split("left out")[1]
    assert "KL" in fig.axes[0].get_ylabel()
    summary["kl_mean"] = by.map({"a": 0.01, "b": float("nan"), "c": float("nan")})  # < 2 with KL: PPL ratio, all placed
    fig = plots.quality_vs_speed(plt, summary)
    assert "PPL ratio" in fig.axes[0].get_ylabel()
    assert "left out" not in " ".join(t.get_text() for t in fig.texts)


def test_priced_cost_plot_names_its_source(tmp_path):
    plots.draw_latency(_tables_dir(tmp_path, PRICE), tmp_path / "plots")
    svg = (tmp_path / "plots/cost.svg").read_text()
    assert "example.org/quote" in svg and "no price configured" not in svg


def test_report_tables_are_html_with_every_line(tmp_path):
    written = report_tables.write_latency(_tables_dir(tmp_path, PRICE), tmp_path / "report")
    assert [p.stem for p in written] == list(plan.TABLE_CATEGORIES)
    for p in written:
        text = p.read_text()
        assert text.startswith("<!DOCTYPE html>") and "<table" in text and text.count("a · hf / v · s") == 1, p
    assert "<td>9.96</td>" in (tmp_path / "report/cost-energy.html").read_text()   # decode time only: prefill is the input's
    assert "Measured on: NVIDIA H200" in text and "requests per line: 5" in text
    assert "[fp16]" in (tmp_path / "report/roofline.html").read_text()


def test_serving_cost_is_at_the_points_measured_throughput():
    from llmbench.analysis import serving

    line = serving._with_cost({"device_name": "NVIDIA H200", "output_throughput": 1000.0}, PRICE)
    assert line["usd_per_1m_output_tokens"] == pytest.approx(1.0)   # 0.001 $/s × 1000 s per 1M tokens
    assert line["price_source"] == "https://example.org/quote (2026-12-01)"
    other = serving._with_cost({"device_name": "AMD EPYC", "output_throughput": 10.0}, PRICE)
    assert math.isnan(other["usd_per_1m_output_tokens"]) and other["price_source"] == ""


def test_serving_plots_from_a_real_serving_table(tmp_path):
    """examples/cpu-serving's table (vLLM CPU and llama.cpp at concurrency 1 and 4): both plots drawn."""
    from conftest import REPO

    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "serving.parquet").write_bytes((REPO / "examples/cpu-serving/serving.parquet").read_bytes())
    written = plots.draw_serving(tables, tmp_path / "plots")
    assert sorted(p.name for p in written) == sorted(f"{n}.{f}" for n in plots.SERVING_PLOTS for f in plots.FORMATS)
    svg = (tmp_path / "plots/serving-throughput.svg").read_text()
    assert "gptq-w4g64 / vllm / vllm-cpu" in svg and "concurrency bound" in svg


def test_a_counter_that_fails_to_read_empties_the_columns_and_says_why(tmp_path):
    _fake_rapl(tmp_path, 100)
    meter = energy.Meter("cpu", rapl_root=str(tmp_path))
    (tmp_path / "intel-rapl:0" / "energy_uj").unlink()          # the counter goes away mid-job
    meter.measure_idle(0.01); meter.begin(); meter.end()
    got = meter.result()
    assert got.energy_j is None and got.energy_note.startswith("the energy counter failed to read")


def test_energy_per_token_counts_the_tokens_of_successful_requests_only():
    """A failed request returned no usable tokens: 4 × 50 successful tokens share the window's energy above idle,
    and the note says the window holds the failed one's energy too."""
    failed = _row(request_index=4, success=False, error="engine raised", output_tokens=10)
    line = _summary([*(_row(request_index=i) for i in range(4)), failed]).iloc[0]
    assert line["energy_j_per_output_token"] == pytest.approx(300 / 200)
    assert "1 failed request(s)" in line["energy_note"]


def test_serving_cost_of_a_tensor_parallel_server_prices_every_device():
    from llmbench.analysis import serving

    one = serving._with_cost({"device_name": "NVIDIA H200", "output_throughput": 1000.0}, PRICE)
    tp2 = serving._with_cost({"device_name": "NVIDIA H200", "output_throughput": 1000.0,
                              "_devices": serving._devices(pd.Series({"variant_options": '{"tensor_parallel_size": 2}'}))},
                             PRICE)
    assert tp2["usd_per_hour"] == pytest.approx(7.2) and tp2["usd_per_1m_output_tokens"] == pytest.approx(
        2 * one["usd_per_1m_output_tokens"])


def test_plots_mark_an_invalid_line(tmp_path):
    out = _tables_dir(tmp_path)
    summary = pd.read_parquet(out / "latency.parquet")
    summary["valid"], summary["failed"] = False, 1
    summary.to_parquet(out / "latency.parquet")
    plots.draw_latency(out, tmp_path / "plots")
    assert "[INVALID]" in (tmp_path / "plots/decode-vs-limit.svg").read_text()
