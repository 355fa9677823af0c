"""Cross-check of llmbench's vLLM line against vLLM's own ``vllm bench latency``, on the same artifact.

Reads the measured (non-warm-up, successful) requests of one vLLM variant from ``requests.parquet``, takes their
mean input length and their output length, runs ``vllm bench latency`` at batch 1 with those lengths and the
variant's settings (dtype, eager or CUDA graphs, max_model_len, random weights for a synthetic artifact), and
prints one JSON line: both tokens/s figures (output tokens / end-to-end latency) and their ratio.

    python benchmarks/vllm_latency_crosscheck.py results/tables/requests.parquet --variant vllm-cuda-graphs \\
        --artifact-dir resources/artifacts/llama-2-7b-synthetic/reference-fp16 [--iters 5] [--out FILE]

Differences that remain by construction: vllm bench latency feeds random token ids of one fixed length (the
mean of ours), while the line runs the 9 real prompts of different lengths; it times ``LLM.generate`` (no
per-token streaming), the line times each token as it reaches the harness.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def line_figures(requests_parquet: Path, variant: str) -> dict:
    import pandas as pd

    from llmbench.analysis.tables import json_obj

    r = pd.read_parquet(requests_parquet)
    m = r[(r["variant"] == variant) & (~r["warmup"]) & (r["success"])]
    if m.empty:
        raise SystemExit(f"no measured successful requests of variant {variant!r} in {requests_parquet}")
    opts = json_obj(m["variant_options"].iloc[0])
    return {"requests": int(len(m)), "mean_input_tokens": float(m["input_tokens"].mean()),
            "output_tokens": int(m["output_tokens"].iloc[0]),
            "tokens_per_s": float(m["output_tokens"].sum() / m["latency_s"].sum()),
            "mean_latency_s": float(m["latency_s"].mean()), "options": opts,
            "synthetic": bool(m["synthetic_weights"].iloc[0])}


def bench_command(artifact_dir: str, line: dict, iters: int, out_json: str) -> list[str]:
    o = line["options"]
    cmd = [sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "latency", "--model", artifact_dir,
           "--input-len", str(round(line["mean_input_tokens"])), "--output-len", str(line["output_tokens"]),
           "--batch-size", "1", "--n", "1", "--num-iters-warmup", "2", "--num-iters", str(iters),
           "--dtype", o.get("dtype", "auto"), "--output-json", out_json, "--seed", "0"]
    if o.get("enforce_eager"):
        cmd.append("--enforce-eager")
    if o.get("max_model_len"):
        cmd += ["--max-model-len", str(o["max_model_len"])]
    if o.get("gpu_memory_utilization"):
        cmd += ["--gpu-memory-utilization", str(o["gpu_memory_utilization"])]
    if o.get("quantization"):
        cmd += ["--quantization", o["quantization"]]
    if line["synthetic"]:
        cmd += ["--load-format", "dummy"]
    return cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("requests_parquet", type=Path)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--artifact-dir", required=True)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    line = line_figures(a.requests_parquet, a.variant)
    with tempfile.TemporaryDirectory() as tmp:
        out_json = str(Path(tmp) / "latency.json")
        cmd = bench_command(a.artifact_dir, line, a.iters, out_json)
        print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
        bench = json.loads(Path(out_json).read_text())
    bench_tps = line["output_tokens"] / bench["avg_latency"]
    res = {"variant": a.variant, "line": line, "vllm_bench_latency": {"command": cmd, **bench,
                                                                      "tokens_per_s": bench_tps},
           "ratio_line_over_bench": line["tokens_per_s"] / bench_tps}
    text = json.dumps(res, default=str)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
