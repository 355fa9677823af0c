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
