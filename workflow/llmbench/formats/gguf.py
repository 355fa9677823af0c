"""GGUF (llama.cpp): how the file type stored in a GGUF is named, and where the artifact keeps its tokenizer."""

from __future__ import annotations

from typing import Any

# llama_ftype value (GGUF key general.file_type) -> name (llama-quantize's names); for reading files back.
FTYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
               11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
               18: "Q6_K", 32: "BF16"}
# The artifact's HF tokenizer directory (manifest key tokenizer_dir), beside the .gguf file.
TOKENIZER_DIR = "tokenizer"


def file_type_name(ftype: Any) -> str | None:
    """The name of a ``general.file_type`` value read from a GGUF (None: the file has no such key); an id this
    table lacks is returned as its number in text, so a new llama.cpp type still shows up."""
    if ftype is None:
        return None
    return FTYPE_NAMES.get(int(ftype), str(ftype))

# GGML type sizes (ggml.c type_traits: bytes per block / elements per block) of the types a KV cache may use
KV_TYPE_BYTES = {0: 4.0, 1: 2.0, 30: 2.0, 8: 34 / 32, 2: 18 / 32, 3: 20 / 32, 6: 22 / 32, 7: 24 / 32}
KV_TYPE_NAMES = {0: "f32", 1: "f16", 30: "bf16", 8: "q8_0", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1"}
EMBEDDING, OUTPUT = "token_embd.weight", "output.weight"


def tensors(path) -> dict[str, tuple[str, int, int, int]]:
    """{tensor name: (type name, bytes, elements, rows)} of a GGUF file, read with the ``gguf`` package
    (memory-mapped; imported only when called). Rows: elements / the first (fastest) dimension."""
    import gguf

    out = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        out[t.name] = (t.tensor_type.name, int(t.n_bytes), int(t.n_elements), int(t.n_elements // int(t.shape[0])))
    return out


def kv_bytes_per_token(metadata: dict[str, str], type_k: int, type_v: int) -> int:
    """KV-cache bytes per token, all layers, from the GGUF's metadata (llama-cpp-python's ``Llama.metadata``)
    and the context's K and V cache types: layers × kv_heads × (key_length × size K + value_length × size V)."""
    arch = metadata["general.architecture"]
    heads = int(metadata[f"{arch}.attention.head_count"])
    kv_heads = int(metadata.get(f"{arch}.attention.head_count_kv", heads))
    default = int(metadata[f"{arch}.embedding_length"]) // heads
    k = int(metadata.get(f"{arch}.attention.key_length", default))
    v = int(metadata.get(f"{arch}.attention.value_length", default))
    return int(int(metadata[f"{arch}.block_count"]) * kv_heads * (k * KV_TYPE_BYTES[type_k] + v * KV_TYPE_BYTES[type_v]))
