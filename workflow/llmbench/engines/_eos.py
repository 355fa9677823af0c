"""The end tokens an adapter masks so that every engine generates exactly N tokens past the same EOS: the ones
HF ``generate`` masks under ``min_new_tokens`` (generation_config.json's ``eos_token_id``)."""

from __future__ import annotations

import json
from pathlib import Path


def generation_config_eos(directory: Path) -> list[int]:
    """``eos_token_id`` of ``directory``/generation_config.json as a list (empty when absent)."""
    path = Path(directory) / "generation_config.json"
    if not path.exists():
        return []
    eos = json.loads(path.read_text()).get("eos_token_id")
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
