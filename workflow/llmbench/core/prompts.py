from __future__ import annotations

import json
from pathlib import Path


def load(path: str | Path) -> list[dict]:
    """JSONL, one object a line with at least ``prompt`` (``id`` defaults to the line number)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines()):
        if not line.strip():
            continue
        obj = json.loads(line)
        if "prompt" not in obj:
            raise ValueError(f"{path}:{n + 1}: no 'prompt' field")
        obj.setdefault("id", n)
        out.append(obj)
    if not out:
        raise ValueError(f"{path}: no prompts")
    return out
