"""Quality next to speed: each benchmarked variant scores its artifact with its own engine and precision.

One job per (model, artifact, variant) whose engine can ``score`` (planning/plan.py), in that engine's env,
on the first ``heldout_tokens`` tokens of corpus.heldout_text() (the packaged, frozen text), scored teacher
forced in independent windows of ``window`` tokens:
  perplexity                   exp(mean NLL) over the scored positions
  ppl_ratio                    perplexity / the reference's perplexity (same text, same token ids)
  teacher_forced_agreement     share of positions where this line's argmax equals the reference's
  kl_mean, kl_p99              KL(P_ref || Q) per position over the reference's top-K tokens plus one bucket
                               for the rest of the mass (:func:`kl_topk_lower_bound`); needs an engine with
                               ``log_probs`` (the whole distribution); empty, with ``kl_note``, otherwise
The reference is the line (quality.reference_artifact, quality.reference_variant); its row stores its top-K
log-probs per position (``topk_ids``/``topk_logprobs``), which the other jobs read.
At merge (from the benchmark rows' output ids, see :func:`greedy_agreement`):
  greedy_agreement             share of identical tokens over the first K generated tokens, per prompt,
                               against the reference variant's output for the same prompt; mean over prompts
  first_divergence             first position where they differ (K when they never do); median over prompts
Synthetic models get no quality figure. The table's columns: schema.QUALITY.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llmbench.core import corpus
from llmbench import engines
from llmbench.core.engine import has_hook
from llmbench.core import schema
from llmbench.provenance import atomic, manifest

TOP_K = 64  # reference log-probs kept per position for KL (1024 positions: 64 Ki ids + log-probs)
REST_FLOOR = 1e-6  # rest-of-vocabulary masses below this are float32 rounding (kl_topk_lower_bound)


def windows(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size) if len(ids[i:i + size]) > 1]


def topk(log_probs, k: int):
    """(ids, log-probs) of the k most likely tokens per row, most likely first: int32 and float32 (n, k)."""
    import numpy as np

    k = min(k, log_probs.shape[1])
    idx = np.argpartition(-log_probs, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(log_probs, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return (np.take_along_axis(idx, order, axis=1).astype(np.int32),
            np.take_along_axis(vals, order, axis=1).astype(np.float32))


def kl_topk_lower_bound(ref_logp, q_logp):
    """Per position, KL(P || Q) of the two distributions coarsened to K+1 outcomes: the reference's top-K
    tokens (``ref_logp``: their log-probs under P, ``q_logp``: the same tokens' log-probs under Q, both (n, K))
    and one bucket holding the rest of each distribution's mass. By the data-processing inequality this is
    a lower bound of the full-vocabulary KL(P || Q) (equal to it when P has no mass outside its top K)."""
    import numpy as np

    p_lp, q_lp = np.asarray(ref_logp, np.float64), np.asarray(q_logp, np.float64)
    p, q = np.exp(p_lp), np.exp(q_lp)
    kl = (p * (p_lp - q_lp)).sum(axis=1)
    # The rest masses are 1 - a sum of float32 probabilities, exact to about 1e-6: a rest under REST_FLOOR
    # is rounding, so P's contributes nothing and Q's is taken as REST_FLOOR (no division by zero).
    p_rest = 1.0 - p.sum(axis=1)
    q_rest = np.maximum(1.0 - q.sum(axis=1), REST_FLOOR)
    rest = np.where(p_rest > REST_FLOOR, np.maximum(p_rest, REST_FLOOR) * (np.log(np.maximum(p_rest, REST_FLOOR))
                                                                          - np.log(q_rest)), 0.0)
    return kl + rest


class Scored:
    """What one job's scoring pass produced, position by position over all windows."""

    def __init__(self):
        self.nll, self.argmax, self.topk_ids, self.topk_logprobs, self.kl = 0.0, [], [], [], []

    @property
    def n(self) -> int:
        return len(self.argmax)

    def perplexity(self) -> float:
        return math.exp(self.nll / self.n)


def score_text(engine, token_ids: list[int], window: int, ref_topk=None, k: int = TOP_K) -> Scored:
    """Score the windows with ``engine.log_probs`` when it has it (then top-K and, given the reference's top-K
    ids (n, K), per-position KL), else with ``engine.score`` (actual log-prob and argmax only)."""
    import numpy as np

    out, full = Scored(), has_hook(engine, "log_probs")
    for w in windows(token_ids, window):
        if full:
            lp = engine.log_probs(w)
            targets = np.asarray(w[1:])
            out.nll -= float(lp[np.arange(len(targets)), targets].astype(np.float64).sum())
            ids, vals = topk(lp, k)
            if ref_topk is not None:
                ref_ids, ref_vals = ref_topk[0][out.n:out.n + len(targets)], ref_topk[1][out.n:out.n + len(targets)]
                out.kl += kl_topk_lower_bound(ref_vals, np.take_along_axis(lp, ref_ids, axis=1)).tolist()
            out.topk_ids += ids.ravel().tolist()
            out.topk_logprobs += vals.ravel().tolist()
            out.argmax += lp.argmax(axis=1).astype(int).tolist()
        else:
            logprobs, preds = engine.score(w)
            out.nll -= sum(logprobs)
            out.argmax += list(preds)
    return out


def ids_sha256(ids: list[int]) -> str:
    """sha256 of the scored token ids (JSON list): two rows are comparable only when these are equal."""
    return hashlib.sha256(json.dumps(list(map(int, ids))).encode()).hexdigest()


def precision(runtime: dict[str, Any], art: dict[str, Any]) -> str:
    """The precision the line scored in, read back from the engine's runtime (HF/vLLM dtype, CTranslate2
    compute_type, OpenVINO's scoring model's inference precision), else the artifact's stored type."""
    backend = runtime.get("score_backend") or {}
    for value in (runtime.get("dtype"), runtime.get("compute_type"), backend.get("inference_precision")):
        if value:
            return str(value)
    params = art.get("params") or {}
    stored = next((params[k] for k in ("type", "weight_format", "quantization", "dtype") if params.get(k)),
                  art.get("quant_type"))  # gguf_shipped has no params: the file type read back from the GGUF
    return f"artifact {stored}" if stored else "unknown"


def load_reference(path: str | None, text_sha: str, ids_sha: str) -> dict[str, Any] | None:
    """The reference's quality row; refused when it scored another text or other token ids."""
    if not path:
        return None
    found = pq.read_table(path).to_pylist()
    if not found:
        raise RuntimeError(f"{path}: the reference line wrote no quality row (its engine did not run: the row of "
                           "its benchmark job says why); nothing to compare this line with")
    ref = found[0]
    if ref.get("status") == "failed":
        raise RuntimeError(f"{path}: the reference line's scoring failed ({ref['failure']}); nothing to compare "
                           "this line with")
    if ref["heldout_sha256"] != text_sha:
        raise RuntimeError(f"{path}: the reference scored held-out text {ref['heldout_sha256']}, this job "
                           f"{text_sha}; rerun the reference's quality job")
    if ref["scored_ids_sha256"] != ids_sha:
        raise RuntimeError(f"{path}: the reference scored other token ids (sha256 {ref['scored_ids_sha256']}, "
                           f"here {ids_sha}): the two tokenizers differ, so agreement and KL are undefined")
    return ref


def compare(scored: Scored, ref: dict[str, Any] | None, engine_name: str, k: int) -> dict[str, Any]:
    """The columns that compare this line with the reference's row (None: this is the reference)."""
    import numpy as np

    if ref is None:
        return {"ppl_ratio": None, "teacher_forced_agreement": None, "kl_mean": None, "kl_p99": None,
                "kl_note": "the reference itself"}
    agreement = sum(a == b for a, b in zip(scored.argmax, ref["argmax_ids"])) / scored.n
    out = {"ppl_ratio": scored.perplexity() / ref["perplexity"], "teacher_forced_agreement": agreement,
           "kl_mean": None, "kl_p99": None, "kl_note": ""}
    if scored.kl:
        kl = np.asarray(scored.kl)
        out.update(kl_mean=float(kl.mean()), kl_p99=float(np.percentile(kl, 99)))
    elif not ref["topk_ids"]:
        out["kl_note"] = f"the reference's engine ({ref['engine']}) gives no whole distribution, so no top-K was stored"
    else:
        out["kl_note"] = (f"engine {engine_name} has no log_probs(): its score gives the actual token's log-prob and "
                          f"its own argmax only, not its log-probs of the reference's top-{k} tokens")
    return out


def _ref_topk(ref: dict[str, Any] | None, n: int):
    import numpy as np

    if not ref or not ref["topk_ids"]:
        return None
    k = int(ref["kl_top_k"])
    return (np.asarray(ref["topk_ids"], np.int64).reshape(n, k), np.asarray(ref["topk_logprobs"], np.float32).reshape(n, k))


def run_job(spec: dict[str, Any], out: Path, log=print) -> Path:
    """Rule quality: load the line's engine and score (lines that only serve; a line with a latency job is
    scored by that job, with the engine it measured: job/bench.py)."""
    art_dir = Path(spec["artifact_dir"])
    art = manifest.verify(art_dir)
    variant = spec["variant"]
    engine = engines.create(variant["engine"])
    try:
        return score_loaded(spec, out, log, engine, engine.load(art_dir, art, variant.get("options", {})), art)
    finally:
        engines.close(engine)


def score_loaded(spec: dict[str, Any], out: Path | None, log, engine, loaded, art: dict[str, Any]) -> Path | None:
    """Score the held-out text with an engine already loaded with the line's options; write the quality row
    (``out`` None: score only, as a tensor-parallel rank other than 0 does, whose forwards rank 0 needs)."""
    variant = spec["variant"]
    q = spec["quality"]
    if not has_hook(engine, "tokenize_plain"):
        raise RuntimeError(f"engine {variant['engine']} has score() but no tokenize_plain(); cannot compute perplexity")
    ids = engine.tokenize_plain(corpus.heldout_text())[: int(q["heldout_tokens"])]
    positions = sum(len(w) - 1 for w in windows(ids, int(q["window"])))
    ref = load_reference(spec.get("reference_quality"), corpus.heldout_sha256(), ids_sha256(ids))
    k = int(q.get("kl_top_k", TOP_K))
    t = time.perf_counter()
    scored = score_text(engine, ids, int(q["window"]), _ref_topk(ref, positions), k)
    cmp = compare(scored, ref, variant["engine"], k)
    log(f"{spec['artifact']} / {spec['variant_name']}: perplexity {scored.perplexity():.3f} over {scored.n} tokens, "
        f"{cmp}")
    row = {"model": spec["model"], "artifact": spec["artifact"], "variant": spec["variant_name"],
           "engine": variant["engine"], "precision": precision(loaded.runtime, art),
           "reference_artifact": q["reference_artifact"], "reference_variant": q["reference_variant"],
           "perplexity": scored.perplexity(), "scored_tokens": scored.n, **cmp,
           "kl_top_k": k if scored.topk_ids else None, "argmax_ids": scored.argmax, "topk_ids": scored.topk_ids,
           "topk_logprobs": scored.topk_logprobs, "scored_ids_sha256": ids_sha256(ids),
           "heldout_sha256": corpus.heldout_sha256(), "artifact_hash": art["content_hash"],
           "dequantized_from": json.dumps(art.get("dequantized_from") or {}, sort_keys=True),
           "engine_version": loaded.engine_version, "runtime": json.dumps(loaded.runtime, default=str),
           "seconds": time.perf_counter() - t, "status": "scored", "failure": ""}
    return atomic.write_parquet(schema.QUALITY.from_records([row]), out) if out is not None else None


def failed_row(spec: dict[str, Any], art: dict[str, Any], loaded, reason: str) -> dict[str, Any]:
    """The quality row of a line whose scoring raised: no figure, status failed with the reason (the benchmark
    job keeps its speed rows; the line's quality says why it has none)."""
    q = spec["quality"]
    row = {c.name: None for c in schema.QUALITY_COLUMNS}
    row.update({"model": spec["model"], "artifact": spec["artifact"], "variant": spec["variant_name"],
                "engine": spec["variant"]["engine"], "precision": precision(loaded.runtime, art),
                "reference_artifact": q["reference_artifact"], "reference_variant": q["reference_variant"],
                "kl_note": "", "argmax_ids": [], "topk_ids": [], "topk_logprobs": [],
                "heldout_sha256": corpus.heldout_sha256(), "artifact_hash": art["content_hash"],
                "dequantized_from": json.dumps(art.get("dequantized_from") or {}, sort_keys=True),
                "engine_version": loaded.engine_version, "runtime": json.dumps(loaded.runtime, default=str),
                "status": "failed", "failure": reason})
    return row


def greedy_agreement(ids: list[int], ref: list[int], k: int) -> tuple[float, int]:
    """(share of equal tokens among the first k, first position that differs — k if none)."""
    a, b = list(ids)[:k], list(ref)[:k]
    n = min(len(a), len(b), k)
    same = [x == y for x, y in zip(a[:n], b[:n])]
    first = next((i for i, s in enumerate(same) if not s), n)
    return (sum(same) / n if n else float("nan")), first
