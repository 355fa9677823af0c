"""CTranslate2's model.bin, read without CTranslate2: the variables the converter wrote (name, shape, type, bytes)
and the aliases (a tied lm_head is an alias of the embedding table). The layout is ctranslate2/specs/
model_spec.py ``_serialize`` (binary version 6): uint32 version, string spec name, uint32 revision, uint32 count,
then per variable: string name, uint8 rank, uint32 dims, uint8 type id, uint32 byte count, the bytes; then uint32
alias count and (alias, target) string pairs. Strings: uint16 length (with the NUL), bytes, NUL."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

TYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # model_spec.py's type ids, in order


@dataclass(frozen=True)
class Variable:
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int


def _string(f) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n)[:-1].decode("utf-8")


def read(path: Path) -> tuple[dict[str, Variable], dict[str, str]]:
    """(variables by name, aliases: alias -> variable name) of a CTranslate2 model.bin; data skipped."""
    variables: dict[str, Variable] = {}
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", f.read(4))
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 binary version {version}; this reader knows 5 and 6")
        _string(f)
        f.read(4)  # spec revision
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            name = _string(f)
            (rank,) = struct.unpack("<B", f.read(1))
            shape = struct.unpack(f"<{rank}I", f.read(4 * rank))
            (type_id,) = struct.unpack("<B", f.read(1))
            (nbytes,) = struct.unpack("<I", f.read(4))
            f.seek(nbytes, 1)
            variables[name] = Variable(name, tuple(shape), TYPES[type_id], nbytes)
        raw = f.read(4)
        aliases = {}
        for _ in range(struct.unpack("<I", raw)[0] if len(raw) == 4 else 0):
            alias = _string(f)
            aliases[alias] = _string(f)
    return variables, aliases


def weight_variables(variables: dict[str, Variable]) -> list[Variable]:
    """The tensors a forward pass reads (rank >= 1: matrices, scales, biases, norms); rank-0 variables are the
    spec's settings (num_heads, activation, ...), not weights."""
    return [v for v in variables.values() if v.shape]


SIZES = {"float32": 4, "int8": 1, "int16": 2, "int32": 4, "float16": 2, "bfloat16": 2}
EMBEDDING = "decoder/embeddings/weight"


def run_types(compute_type: str) -> tuple[str, str]:
    """(weight type, activation type) of a CTranslate2 compute type as the Generator reports it (int8 alone and
    int16 compute in float32, as CTranslate2 does on the CPU)."""
    weight, _, act = compute_type.partition("_")
    if weight in ("int8", "int16"):
        return weight, act or "float32"
    return weight, weight


def _quantized_matrix(v: Variable) -> bool:
    return len(v.shape) == 2 and v.name.endswith("/weight")


def bytes_as_run(variables: dict[str, Variable], compute_type: str) -> dict[str, int]:
    """{name: bytes} of the weight variables as the Generator holds them at ``compute_type``: matrices saved in
    another type are converted at load (int8/int16 ones get a float32 scale per row; float ones drop their
    scales), other tensors take the activation type."""
    weight, act = run_types(compute_type)
    out = {}
    for v in weight_variables(variables):
        n = 1
        for d in v.shape:
            n *= d
        if _quantized_matrix(v):
            out[v.name] = n * SIZES[weight] + (4 * v.shape[0] if weight.startswith("int") else 0)
        elif v.name.endswith("_scale") and v.name.removesuffix("_scale") in variables:
            continue  # counted with its matrix above
        else:
            out[v.name] = n * SIZES[act if v.dtype.startswith(("float", "bfloat")) else v.dtype]
    return out


def kv_bytes_per_token(variables: dict[str, Variable], compute_type: str) -> int:
    """KV-cache bytes per token, all layers, in the activation type: per layer the fused QKV projection's rows
    (heads·d + 2·kv_heads·d) minus the output projection's input width (heads·d) is 2·kv_heads·d."""
    _, act = run_types(compute_type)
    total, i = 0, 0
    while f"decoder/layer_{i}/self_attention/linear_0/weight" in variables:
        qkv = variables[f"decoder/layer_{i}/self_attention/linear_0/weight"].shape[0]
        total += qkv - variables[f"decoder/layer_{i}/self_attention/linear_1/weight"].shape[1]
        i += 1
    return total * SIZES[act]
