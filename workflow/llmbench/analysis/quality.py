"""Quality next to speed: perplexity on a fixed held-out text and agreement with the reference artifact.

Per artifact (one job, in the env of an engine that can ``score``):
  perplexity                   exp(mean NLL) over the first ``heldout_tokens`` tokens of corpus.heldout_text(),
                               scored in independent windows of ``window`` tokens (teacher forced)
  teacher_forced_agreement     share of positions where the artifact's argmax equals the reference's argmax
                               on the same held-out tokens (needs the reference's quality file)
At merge (from the benchmark rows' output ids, see :func:`greedy_agreement`):
  greedy_agreement             share of identical tokens over the first K generated tokens, per prompt,
                               against the reference artifact's output for the same prompt; mean over prompts
  first_divergence             first position where they differ (K when they never do); median over prompts
Synthetic models get no quality figure. The table's columns: rows.QUALITY.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llmbench.analysis import corpus
from llmbench import engines
from llmbench.job import rows
from llmbench.provenance import atomic, manifest

def windows(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size) if len(ids[i:i + size]) > 1]


def score_text(engine, token_ids: list[int], window: int) -> tuple[float, list[int], int]:
    """(perplexity, argmax prediction per scored position, number of scored positions)."""
    nll, argmax = 0.0, []
    for w in windows(token_ids, window):
        logprobs, preds = engine.score(w)
        nll -= sum(logprobs)
        argmax += preds
    return math.exp(nll / len(argmax)), argmax, len(argmax)


def run_job(spec: dict[str, Any], out: Path, log=print) -> Path:
    import json

    art_dir = Path(spec["artifact_dir"])
    art = manifest.verify(art_dir)
    variant = spec["variant"]
    engine = engines.create(variant["engine"])
    loaded = engine.load(art_dir, art, variant.get("options", {}))
    q = spec["quality"]
    text = corpus.heldout_text()
    ids = engine.tokenize_plain(text)[: int(q["heldout_tokens"])] if hasattr(engine, "tokenize_plain") else None
    if ids is None:
        raise RuntimeError(f"engine {variant['engine']} has score() but no tokenize_plain(); cannot compute perplexity")
    t = time.perf_counter()
    ppl, argmax, n = score_text(engine, ids, int(q["window"]))
    agreement = None
    if spec.get("reference_quality"):
        ref = pq.read_table(spec["reference_quality"]).to_pylist()[0]
        ref_ids = ref["argmax_ids"]
        if len(ref_ids) != len(argmax):
            raise RuntimeError(f"reference scored {len(ref_ids)} positions, this artifact {len(argmax)}: "
                               "the two tokenizers differ, so teacher-forced agreement is undefined")
        agreement = sum(a == b for a, b in zip(argmax, ref_ids)) / len(argmax)
    log(f"{spec['artifact']}: perplexity {ppl:.3f} over {n} tokens, teacher-forced agreement {agreement}")
    row = {"model": spec["model"], "artifact": spec["artifact"], "variant": spec["variant_name"],
           "engine": variant["engine"], "reference_artifact": q["reference_artifact"], "perplexity": ppl,
           "scored_tokens": n, "teacher_forced_agreement": agreement, "argmax_ids": argmax,
           "heldout_sha256": corpus.heldout_sha256(), "artifact_hash": art["content_hash"],
           "engine_version": loaded.engine_version, "runtime": json.dumps(loaded.runtime, default=str),
           "seconds": time.perf_counter() - t}
    return atomic.write_parquet(rows.QUALITY.from_records([row]), out)


def greedy_agreement(ids: list[int], ref: list[int], k: int) -> tuple[float, int]:
    """(share of equal tokens among the first k, first position that differs — k if none)."""
    a, b = list(ids)[:k], list(ref)[:k]
    n = min(len(a), len(b), k)
    same = [x == y for x, y in zip(a[:n], b[:n])]
    first = next((i for i, s in enumerate(same) if not s), n)
    return (sum(same) / n if n else float("nan")), first
