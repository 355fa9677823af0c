"""The physical limit beside the measured figure: bytes one decode step reads, and the memory read bandwidth,
measured in the job itself.

Bytes read per decode step (batch 1), defined once here (:func:`decode_bytes`) and used by every engine's line:

    weight tensor bytes as the engine ran them (Loaded.weight_bytes)
  - the input embedding table, except the one row the step gathers (untied embeddings only: with tied
    embeddings, e.g. SmolLM2's lm_head = embed_tokens, the lm_head matmul reads the whole table every step)
  + KV-cache bytes read at the step's context length (Loaded.kv_bytes_per_token × context)

The context of a request's decode steps is taken as their mean (:func:`decode_context`): the step that yields
new token k (k = 2..N; TPOT covers those) attends to input + k - 1 tokens, a mean of input + N/2.

``bandwidth × devices / decode bytes`` is the token rate the memory allows, and MBU (model bandwidth
utilization) = decode bytes × decode tok/s / (bandwidth × devices). ``devices``: memories read in parallel,
each with the bandwidth measured on one of them (tensor parallel over N GPUs: N, each worker reading its own
shard from its own GPU; on a CPU the workers share one memory: 1). Bandwidth is measured on the card (or CPU)
the job runs on, before the engine loads, with the threads the engine uses; a datasheet peak is shown beside it
only where the card is known (core/hardware.py), named as such.

Prefill is bound by compute: :func:`prefill_flops` counts the FLOPs of a prompt from the model's shape
(:func:`model_shape`, read from its config.json), the ideal prefill time is the larger of those FLOPs at the
card's datasheet peak and one read of the weights at the measured bandwidth, and MFU = FLOPs / TTFT / peak.
"""

from __future__ import annotations

import os
import time

MBU_FLAG = "MBU >100%: check weight bytes"


def decode_context(input_tokens: int, output_tokens: int) -> float:
    """Mean context length over a request's decode steps (see the module docstring)."""
    return input_tokens + output_tokens / 2


def decode_bytes(weight_bytes: int | None, input_embedding_bytes: int | None, embedding_row_bytes: int | None,
                 tied_embeddings: bool | None, kv_bytes_per_token: int | None, context: float) -> int | None:
    """Bytes one batch-1 decode step reads at ``context`` tokens (module docstring); None when the engine did
    not report a part (no guess: the line then has no roofline figure)."""
    if None in (weight_bytes, input_embedding_bytes, embedding_row_bytes, tied_embeddings, kv_bytes_per_token):
        return None
    unread = 0 if tied_embeddings else input_embedding_bytes - embedding_row_bytes
    return int(weight_bytes - unread + kv_bytes_per_token * context)


def roofline_tokens_per_s(bandwidth: float, devices: int, step_bytes: float) -> float:
    """The batch-1 decode rate the memory allows: every device reads its share of the step's bytes at once."""
    return bandwidth * devices / step_bytes


def mbu(step_bytes: float, decode_tokens_per_s: float, bandwidth: float, devices: int) -> float:
    """decode bytes × decode tok/s / (bandwidth × devices); TP=N: N GPUs' bandwidth against all N shards."""
    return step_bytes * decode_tokens_per_s / (bandwidth * devices)


def datasheet(device_name: str | None) -> tuple[float, str] | None:
    """(peak bytes/s, its source) of a card core/hardware.py knows by that exact name, else None."""
    from llmbench.core import hardware

    c = hardware.card(device_name)
    return (c.bandwidth_bytes_per_s, c.source) if c else None


SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
              "intermediate_size", "vocab_size", "tie_word_embeddings")


def model_shape(config: dict) -> dict:
    """The parts of an HF config.json the FLOP count needs (a Llama-style decoder: q/k/v/o projections, a
    gated MLP of three matrices, lm_head), with ``matmul_parameters``: the weights of every matmul a token goes
    through (the input embedding is a gather, not a matmul; lm_head is counted whether or not it is tied)."""
    heads = config["num_attention_heads"]
    shape = {k: config.get(k) for k in SHAPE_KEYS}
    shape["num_key_value_heads"] = config.get("num_key_value_heads") or heads
    shape["head_dim"] = config.get("head_dim") or config["hidden_size"] // heads
    d, hd, kv = shape["hidden_size"], shape["head_dim"], shape["num_key_value_heads"]
    attn = d * hd * heads * 2 + d * hd * kv * 2          # q, o; k, v
    mlp = 3 * d * shape["intermediate_size"]              # gate, up, down
    shape["matmul_parameters"] = shape["num_hidden_layers"] * (attn + mlp) + d * shape["vocab_size"]
    return shape


def prefill_flops(shape: dict, input_tokens: int) -> float:
    """FLOPs of a batch-1 prefill of ``input_tokens``: 2 × the layers' matmul weights per token, the attention
    scores and weighted sum (2 matmuls × 2 FLOPs × heads × head_dim per query-key pair, causal: T(T+1)/2 pairs
    per layer), and lm_head for the last position only (what generate computes)."""
    t = int(input_tokens)
    d, v, layers = shape["hidden_size"], shape["vocab_size"], shape["num_hidden_layers"]
    layer_weights = shape["matmul_parameters"] - d * v
    attention = layers * 4 * shape["num_attention_heads"] * shape["head_dim"] * t * (t + 1) / 2
    return 2 * layer_weights * t + attention + 2 * d * v


def ideal_prefill_s(flops: float, peak_flops_per_s: float, weight_bytes: float, bandwidth: float,
                    devices: int = 1) -> float:
    """The least time a prefill can take: its FLOPs at the peak, or one read of the weights, whichever is longer."""
    return max(flops / (peak_flops_per_s * devices), weight_bytes / (bandwidth * devices))


def kv_bytes_per_token(config: dict, element_bytes: float) -> int:
    """KV-cache bytes per token of context, all layers: layers × 2 (K, V) × kv_heads × head_dim × element bytes,
    from a model's HF config.json (``num_key_value_heads`` absent: multi-head attention)."""
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return int(config["num_hidden_layers"] * 2 * config.get("num_key_value_heads", heads) * head_dim * element_bytes)


def _timed_sum(x, reps: int) -> float:
    x.sum()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); x.sum()
        best = min(best, time.perf_counter() - t)
    return best


def _cuda_bandwidth(torch, device: str, gib: float | None, reps: int) -> tuple[float, str]:
    n = int((gib or 4) * 2**30) // 2
    x = torch.ones(n, dtype=torch.float16, device=device)
    x.sum(); torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); x.sum(); torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    del x
    torch.cuda.empty_cache()
    return n * 2 / best, f"torch fp16 sum over {n * 2 / 2**30:.0f} GiB on {device}, best of {reps}"


def read_bandwidth(device: str, gib: float | None = None, reps: int = 10,
                   threads: int | None = None) -> tuple[float, str]:
    """(bytes/s, how it was measured): best of ``reps`` full reads (a sum) of a large buffer. On the CPU with
    ``threads`` (the engine's CPU threads, Placement.cpu_threads) or, when None, every core of the machine."""
    try:
        import torch
    except ImportError:
        torch = None
    if device.startswith("cuda"):
        return _cuda_bandwidth(torch, device, gib, reps)
    size = int((gib or 1) * 2**30)
    n = threads or os.cpu_count() or 1
    whose = "the engine's threads" if threads else "all cores: the engine's thread count is the library default"
    if torch is not None:
        # not the job's OMP_NUM_THREADS (Snakemake sets it to the job's threads); restored before the engine loads
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        x = torch.ones(size // 4, dtype=torch.float32)
        how = f"torch fp32 sum over {size / 2**30:.0f} GiB, {n} threads ({whose}), best of {reps}"
    else:
        import numpy as np
        x = np.ones(size // 4, dtype=np.float32)
        how = f"numpy fp32 sum over {size / 2**30:.0f} GiB (numpy's threads), best of {reps}"
    best = _timed_sum(x, reps)
    del x
    if torch is not None:
        torch.set_num_threads(before)
    return size / best, how
