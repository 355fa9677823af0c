"""Overhead of the llmbench harness over a bare ``generate()`` loop, measured in one run.

Same model, same prompts, same number of new tokens, greedy, batch 1. Bare: tokenize outside the clock,
``model.generate(min_new_tokens=N, max_new_tokens=N)`` per prompt. Harness: the HF adapter and the latency
scenario's ``measure`` (streamer timestamps per token, token checks, peak-memory reset/read, decode). Rounds
alternate bare/harness so drift on the machine hits both; the figure is the ratio of the summed times.

    python benchmarks/harness_overhead.py [ARTIFACT_DIR] [--tokens 64] [--rounds 3] [--threads 2]

Goal: overhead <= 2 %. Run it on a quiet machine; it prints one JSON line you can keep.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmbench.provenance import manifest
from llmbench.job import prompts
from llmbench import provenance
from llmbench.engines.hf import HFEngine
from llmbench.job.scenarios.latency import check_counts, measure

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact", nargs="?", default=str(REPO / "resources/artifacts/smollm2-135m/q4_1-dequant-fp32"))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--prompts", default=str(REPO / "config/prompts/latency-9-prompts.jsonl"))
    a = ap.parse_args()

    art = Path(a.artifact)
    engine = HFEngine()
    loaded = engine.load(art, manifest.verify(art), {"device": "cpu", "dtype": a.dtype, "num_threads": a.threads})
    torch, model = engine.torch, engine.model
    encoded = [engine.encode(p["prompt"]) for p in prompts.load(a.prompts)]
    tensors = [torch.tensor([ids]) for ids in encoded]

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for ids in tensors:
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.tokens,
                                     min_new_tokens=a.tokens, do_sample=False, disable_compile=True)
                assert out.shape[1] - ids.shape[1] == a.tokens
        return time.perf_counter() - t

    def harness() -> float:
        t = time.perf_counter()
        for ids in encoded:
            m = measure(engine, ids, a.tokens)
            assert not check_counts(m)
        return time.perf_counter() - t

    bare(), harness()  # warm-up of both paths, not counted
    times = {"bare": [], "harness": []}
    for _ in range(a.rounds):
        times["bare"].append(bare())
        times["harness"].append(harness())
    ratio = sum(times["harness"]) / sum(times["bare"])
    print(json.dumps({
        "overhead_ratio": round(ratio, 4), "overhead_pct": round((ratio - 1) * 100, 2),
        "bare_s": [round(x, 3) for x in times["bare"]], "harness_s": [round(x, 3) for x in times["harness"]],
        "tokens": a.tokens, "prompts": len(encoded), "rounds": a.rounds, "threads": a.threads,
        "dtype": loaded.runtime["dtype"], "device": loaded.device_name, "torch": provenance.version_of("torch"),
        "transformers": provenance.version_of("transformers"), "date": time.strftime("%Y-%m-%d"),
    }))


if __name__ == "__main__":
    main()
