"""Fetch a model into a directory and write its manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llmbench.provenance import manifest
from llmbench.models import sources
from llmbench.provenance import versions


def fetch(name: str, cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    t = time.perf_counter()
    options = {k: v for k, v in cfg.items() if k != "source"}
    fields = sources.fetch(cfg["source"], out_dir, options)
    synthetic = None
    if fields.pop("synthetic", False):
        synthetic = {"preset": fields["preset"], "seed": fields["seed"]}
        if fields.get("materialized"):  # weights drawn once and saved: builders and engines read the files
            synthetic["materialized"] = fields["materialized"]
    return manifest.write(out_dir, "model", name=name, source=cfg["source"], options=options, synthetic=synthetic,
                          fetch_time_s=round(time.perf_counter() - t, 3),
                          library_versions=versions("transformers", "gguf", "huggingface_hub", "torch"), **fields)
