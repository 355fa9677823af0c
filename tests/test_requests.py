"""Failed requests are rows, warm-ups cover every shape, summary lines carry confidence intervals (issue 16,
items 7, 10, 14). Fake engines run the real bench job and merge; no engine library is needed."""

import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from llmbench import engines
from llmbench.analysis import tables
from llmbench.core.engine import Generation, Loaded
from llmbench.job import bench
from llmbench.core import prompts
from llmbench.job.scenarios import latency
from test_rows import dirs, spec_for  # noqa: F401 - the fixture is used by name

PROMPTS = prompts.load(REPO / "config/prompts/latency-9-prompts.jsonl")


class FakeEngine:
    """ids = [prompt index] + one per word: the input length is the prompt's word count + 1 (9, 8, 8, 25, ... words:
    three prompts share a length). Subclasses fail on some prompts."""

    name = "fake"

    def load(self, artifact_dir, manifest, options):
        return Loaded(engine_version="0", device="cpu", device_name="fake", weight_bytes=1000)

    def encode(self, prompt):
        return [[p["prompt"] for p in PROMPTS].index(prompt)] + [0] * len(prompt.split())

    def decode(self, ids):
        return " ".join(map(str, ids))

    def tokens(self, input_ids, max_new_tokens):
        return [input_ids[0] + i + 1 for i in range(max_new_tokens)]

    def generate(self, input_ids, max_new_tokens, on_token):
        out = self.tokens(input_ids, max_new_tokens)
        for t in out:
            on_token(t)
        return Generation(out)

    def reset_peak_memory(self):
        pass

    def peak_memory(self):
        return 123, "fake"


class RaisesOnTwoShortOnFive(FakeEngine):
    def tokens(self, input_ids, max_new_tokens):
        if input_ids[0] == 2:
            raise RuntimeError("out of cache blocks")
        return super().tokens(input_ids, max_new_tokens - (input_ids[0] == 5))


class AlwaysRaises(FakeEngine):
    def tokens(self, input_ids, max_new_tokens):
        raise RuntimeError("device lost")


def run(dirs, engine, monkeypatch, tmp_path, **scenario):
    monkeypatch.setattr(bench.roofline, "read_bandwidth", lambda d, **kw: (5e9, "fake"))
    monkeypatch.setattr(engines, "create", lambda name: engine)
    spec = spec_for(*dirs)
    spec["scenario"].update(scenario)
    log = []
    out = bench.run_job(spec, tmp_path / "run.parquet", log=log.append)
    return pd.read_parquet(out), log


def test_failed_requests_are_rows_and_the_line_is_invalid(dirs, tmp_path, monkeypatch):
    # old code: the engine's RuntimeError (or TokenCountError for prompt 5) stopped the job, no Parquet
    df, log = run(dirs, RaisesOnTwoShortOnFive(), monkeypatch, tmp_path, warmup=1)
    assert len(df) == 10 and df["request_index"].tolist() == list(range(10))
    measured = df[~df["warmup"]].set_index("prompt_id")
    assert sorted(measured.index[~measured["success"]]) == ["2", "5"]
    raised, short = measured.loc["2"], measured.loc["5"]
    assert raised["error"].startswith("engine raised RuntimeError: out of cache blocks (at ")
    assert pd.isna(raised["latency_s"]) and pd.isna(raised["output_tokens"]) and pd.isna(raised["ttft_s"])
    assert short["error"] == "engine returned 2 new tokens, 3 were requested" and short["latency_s"] > 0
    assert any("2 of 9 measured requests FAILED" in line for line in log)

    line = tables.summarize(df).iloc[0]
    assert line["requests"] == 9 and line["failed"] == 2 and not line["valid"]
    assert line["avg_output_tokens"] == 3  # the short request is left out of every statistic
    # every figure is what the successful requests alone give: the failed rows change none of them
    alone = tables.summarize(df[df["success"] | df["warmup"]]).iloc[0]
    for col in ("tokens_per_s", "avg_latency_s", "ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tokens_per_s_ci_low",
                "tokens_per_s_ci_high"):
        assert line[col] == alone[col], col
    assert line["note"].startswith("2 of 9 measured requests failed; the first (request 3, prompt 2): engine raised")
    md = tables.to_markdown(tables.add_quality(tables.summarize(df), df, [], {}))
    assert "verified, INVALID: 2 failed" in md and "| 9 (2) " in md
    assert "**llamacpp / v on a: INVALID.** 2 of 9 measured requests failed" in md


def test_a_job_with_no_successful_request_fails_and_writes_nothing(dirs, tmp_path, monkeypatch):
    # old code: failed too, but at the first request; now every request is tried, logged, then the job fails
    with pytest.raises(bench.NothingMeasured, match="none of the 9 measured requests succeeded; the first: "
                                                    "engine raised RuntimeError: device lost"):
        run(dirs, AlwaysRaises(), monkeypatch, tmp_path, warmup=0)
    assert not (tmp_path / "run.parquet").exists()


def test_a_request_over_the_timeout_fails_with_that_reason(dirs, tmp_path, monkeypatch):
    class SlowOnFour(FakeEngine):
        def tokens(self, input_ids, max_new_tokens):
            if input_ids[0] == 4:
                time.sleep(0.3)
            return super().tokens(input_ids, max_new_tokens)

    df, _ = run(dirs, SlowOnFour(), monkeypatch, tmp_path, warmup=0, request_timeout_s=0.2)
    failed = df[~df["success"]]
    assert failed["prompt_id"].tolist() == ["4"]
    assert "over request_timeout_s = 0.2 (judged after the request finished)" in failed["error"].iloc[0]
    assert df[df["success"]]["latency_s"].max() < 0.2


def test_warmup_all_runs_every_distinct_prompt_once_first(dirs, tmp_path, monkeypatch):
    items = [{"id": 0, "prompt": "a"}, {"id": 1, "prompt": "b"}, {"id": 2, "prompt": "a"}]
    assert [p["id"] for p in latency.warmup_prompts(items, "all")] == [0, 1]
    assert [p["id"] for p in latency.warmup_prompts(items, 2)] == [0, 1]
    df, _ = run(dirs, FakeEngine(), monkeypatch, tmp_path, warmup="all")
    assert df["warmup"].tolist() == [True] * 9 + [False] * 9
    assert df["prompt_id"].tolist()[:9] == [str(p["id"]) for p in PROMPTS]
    assert not df[~df["warmup"]]["first_of_shape"].any()  # every shape was met in a warm-up


def test_short_warmups_keep_one_full_length_warmup_on_the_longest_input(dirs, tmp_path, monkeypatch):
    # without warmup_new_tokens every warm-up ran max_new_tokens (a third of a default job's requests)
    spec_tokens = spec_for(*dirs)["scenario"]["max_new_tokens"]
    df, _ = run(dirs, FakeEngine(), monkeypatch, tmp_path, warmup="all", warmup_new_tokens=2)
    warm, measured = df[df["warmup"]], df[~df["warmup"]]
    longest = warm["input_tokens"].idxmax()
    assert warm.loc[longest, "requested_output_tokens"] == spec_tokens
    assert (warm.drop(longest)["requested_output_tokens"] == min(2, spec_tokens)).all()
    assert warm["success"].all() and (warm["output_tokens"] == warm["requested_output_tokens"]).all()
    assert (measured["requested_output_tokens"] == spec_tokens).all() and measured["success"].all()
    assert not measured["first_of_shape"].any()
    assert latency.warmup_lengths([[1], [1, 2, 3], [1, 2, 3]], 8, 2) == [2, 8, 2]
    assert latency.warmup_lengths([[1], [1, 2]], 8, None) == [8, 8]
    assert latency.warmup_lengths([[1], [1, 2]], 8, 20) == [8, 8]


def test_first_of_shape_flags_the_first_request_of_each_input_length(dirs, tmp_path, monkeypatch):
    df, _ = run(dirs, FakeEngine(), monkeypatch, tmp_path, warmup=1)
    # input lengths 10, 9, 9, 26, 8, 19, 9, 15, 32; the warm-up (prompt 0) met length 10
    assert df["input_tokens"].tolist()[1:] == [10, 9, 9, 26, 8, 19, 9, 15, 32]
    assert df["first_of_shape"].tolist() == [True, False, True, False, True, True, True, False, True, True]


def test_warmup_all_is_the_default_in_schema_and_configs():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    scenario = schema["properties"]["scenarios"]["additionalProperties"]["properties"]
    assert scenario["warmup"]["default"] == "all" and scenario["request_timeout_s"]["default"] is None
    for name in ("config.yaml", "gpu.yaml"):
        cfg = yaml.safe_load((REPO / "config" / name).read_text())
        assert cfg["scenarios"]["latency"]["warmup"] == "all", name


def test_bootstrap_interval_is_fixed_and_brackets_the_figure():
    rng = np.random.default_rng(1)
    values = {"t": rng.normal(0.04, 0.002, 30)}
    median = lambda t: np.median(t, axis=1)  # noqa: E731
    low, high = tables.bootstrap_ci(values, median)
    assert low < np.median(values["t"]) < high and (low, high) == tables.bootstrap_ci(values, median)
    assert high - low < 0.004  # about 2 standard errors of a median of 30 each side, not the data's range
    assert tables.bootstrap_ci({"t": np.full(9, 0.05)}, median) == (0.05, 0.05)
    assert all(np.isnan(tables.bootstrap_ci({"t": np.array([0.05])}, median)))


def test_summary_line_and_markdown_carry_the_intervals(dirs, tmp_path, monkeypatch):
    df, _ = run(dirs, FakeEngine(), monkeypatch, tmp_path, warmup=0, repeats=2)
    line = tables.summarize(df).iloc[0]
    assert line["valid"] and line["failed"] == 0 and line["requests"] == 18
    assert line["tokens_per_s_ci_low"] <= line["tokens_per_s"] <= line["tokens_per_s_ci_high"]
    assert line["tpot_p50_ci_low_s"] <= line["tpot_p50_s"] <= line["tpot_p50_ci_high_s"]
    md = tables.to_markdown(tables.add_quality(tables.summarize(df), df, [], {}))
    tps = f"{line['tokens_per_s']:.1f} ({line['tokens_per_s_ci_low']:.1f}–{line['tokens_per_s_ci_high']:.1f})"
    assert tps in md and "here n = 18" in md and ", INVALID" not in md


def _two_passes(shift: float) -> pd.DataFrame:
    """Nine prompts × two passes; every request of the second pass takes ``shift`` × its first-pass time (as if
    the machine ran slower minutes later), with a little request-to-request noise."""
    rng = np.random.default_rng(3)
    base = 2.0 + 0.05 * rng.standard_normal(9)
    rows = [{"repeat": r, "prompt_id": str(p), "output_tokens": 64, "latency_s": base[p] * (shift if r else 1.0),
             "tpot_s": base[p] * (shift if r else 1.0) / 64, "ttft_s": 0.1} for r in (0, 1) for p in range(9)]
    return pd.DataFrame(rows)


def test_a_shifted_pass_widens_the_interval_to_cover_both_passes():
    """The passes, not the requests, are the independent units: when the second pass ran 15% slower, the line's
    interval spans both passes' own tokens/s (pooling the 18 requests as independent gave one that held neither)."""
    same, shifted = tables._speed(_two_passes(1.0)), tables._speed(_two_passes(1.15))
    width = lambda s: s["tokens_per_s_ci_high"] - s["tokens_per_s_ci_low"]  # noqa: E731
    assert width(shifted) > 3 * width(same)
    first, second = shifted["tokens_per_s_by_pass"]
    assert second == pytest.approx(first / 1.15) and shifted["passes"] == 2
    assert shifted["tokens_per_s_ci_low"] <= second < first <= shifted["tokens_per_s_ci_high"]
    assert shifted["tpot_p50_ci_low_s"] <= np.median(_two_passes(1.15)["tpot_s"][:9]) * 1.0
    assert shifted["tpot_p50_ci_high_s"] >= np.median(_two_passes(1.15)["tpot_s"][9:])


def test_overlapping_intervals_are_said_under_the_table(dirs, tmp_path, monkeypatch):
    df, _ = run(dirs, FakeEngine(), monkeypatch, tmp_path, warmup=0, repeats=2)
    twin = df.assign(variant="twin")   # the same requests under another name: the same interval
    summary = tables.add_quality(tables.summarize(pd.concat([df, twin])), df, [], {})
    assert list(summary["ci_overlaps"]) == ["llamacpp / v on a", "llamacpp / twin on a"]  # sorted by variant: twin, v
    md = tables.to_markdown(summary)
    assert "Overlapping tokens/s intervals" in md and "llamacpp / twin on a ~ llamacpp / v on a" in md
    assert "| tok/s per pass " in md


def test_an_unverified_line_shows_no_size_on_disk(dirs, tmp_path, monkeypatch):
    """Its artifact directory holds what the build could write (a commands file, the tokenizer): no artifact."""
    df, _ = run(dirs, FakeEngine(), monkeypatch, tmp_path, warmup=0, repeats=1)
    unverified = df.iloc[:1].assign(variant="mlc", status="unverified", success=False, error="mlc_llm not installed",
                                    artifact_bytes=7 * 2**20)
    summary = tables.add_quality(tables.summarize(pd.concat([df, unverified])), df, [], {})
    md = tables.to_markdown(summary)
    header = [c.strip() for c in md.splitlines()[0].split("|")]
    row = [c.strip() for c in next(line for line in md.splitlines() if "/ mlc " in line).split("|")]
    cell = dict(zip(header, row))
    assert cell["on disk (MiB)"] in ("", "<NA>") and cell["status"].startswith("unverified")
