"""What one benchmark job ran and where it came from: the columns every row of the job shares.

Built once per job (:meth:`JobContext.build`) from the spec, the model's and the artifact's manifests and,
when the engine loaded, its ``Loaded`` and the bandwidth measured before loading; ``rows.request_row`` and
``rows.unverified_row`` turn it into rows.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from llmbench import provenance
from pathlib import Path

from llmbench.core import roofline
from llmbench.core.engine import Loaded
from llmbench.core.energy import Energy
from llmbench.provenance import manifest

CONFIG_KEYS = ("model_config", "artifact_config", "variant", "scenario")
# Loaded's fields copied as they are into columns of the same name
LOADED_FACTS = ("weight_bytes_method", "input_embedding_bytes", "embedding_row_bytes", "tied_embeddings",
                "kv_bytes_per_token", "ran_as", "threads")


@dataclass(frozen=True)
class JobContext:
    """Every field is a row column of the same name, except those marked ``column: False``."""

    model: str
    artifact: str
    engine: str
    variant: str
    scenario: str
    synthetic_weights: bool
    variant_options: str
    model_hash: str
    artifact_hash: str
    model_manifest_sha256: str
    artifact_manifest_sha256: str
    artifact_bytes: int
    host: str
    env_hash: str
    git_commit: str
    config_hash: str
    run_id: str
    timestamp: str
    model_shape: str
    # what the scenario asks of every request (an unverified row records it as requested_output_tokens)
    max_new_tokens: int = field(metadata={"column": False})
    # from the engine; None (runtime "{}") when it did not load
    engine_version: str | None = None
    library_versions: str | None = None
    device: str | None = None
    device_name: str | None = None
    runtime: str = "{}"
    weight_bytes: int | None = None
    read_bandwidth_bytes_per_s: float | None = None
    bandwidth_method: str | None = None
    bandwidth_devices: int | None = None
    weight_bytes_method: str | None = None
    input_embedding_bytes: int | None = None
    embedding_row_bytes: int | None = None
    tied_embeddings: bool | None = None
    kv_bytes_per_token: int | None = None
    ran_as: str | None = None
    threads: int | None = None
    energy_j: float | None = None
    energy_window_s: float | None = None
    idle_power_w: float | None = None
    energy_method: str = ""
    energy_note: str = ""
    interference: str = "{}"
    bandwidth_probes: list = field(default_factory=list)
    bandwidth_threads: int | None = None
    bandwidth_cpus: str = ""
    bandwidth_flag: str = ""

    @classmethod
    def build(cls, spec: dict[str, Any], art: dict[str, Any], model_manifest: dict[str, Any], started: str,
              loaded: Loaded | None = None, bandwidth: tuple[float, str] | None = None,
              bandwidth_devices: int = 1, energy: Energy | None = None, interference: str = "{}",
              probe: dict | None = None) -> JobContext:
        """``started``: when the job started (ISO 8601). Give ``loaded`` after the run: its runtime and
        weight_bytes are read now, and some engines learn them only while running. ``bandwidth_devices``:
        memories read in parallel, each at the measured bandwidth (roofline.py). ``energy``: the job's measured
        window (core/energy.py); ``interference``: what else used the machine then (job/interference.py, JSON);
        ``probe``: the bandwidth probe's columns (job/bandwidth.Probe.columns)."""
        variant = spec["variant"]
        ctx = cls(
            model=spec["model"], artifact=spec["artifact"], engine=variant["engine"],
            variant=spec["variant_name"], scenario=spec["scenario_name"],
            synthetic_weights=bool(art.get("synthetic")),
            variant_options=json.dumps(variant.get("options", {}), sort_keys=True),
            model_hash=model_manifest["content_hash"], artifact_hash=art["content_hash"],
            model_manifest_sha256=model_manifest[manifest.SELF_HASH], artifact_manifest_sha256=art[manifest.SELF_HASH],
            artifact_bytes=art["total_bytes"],
            host=json.dumps(provenance.host(), sort_keys=True),
            env_hash=provenance.env_hash(),
            git_commit=provenance.git_commit(),  # of the working directory: where snakemake runs
            config_hash=manifest.sha256_json({k: spec[k] for k in CONFIG_KEYS}),
            run_id=uuid.uuid4().hex[:16], timestamp=started,
            max_new_tokens=int(spec["scenario"]["max_new_tokens"]),
            model_shape=json.dumps(_model_shape(spec), sort_keys=True),
        )
        if loaded is None:
            return ctx
        return replace(
            ctx, engine_version=loaded.engine_version,
            library_versions=json.dumps(loaded.library_versions, sort_keys=True),
            device=loaded.device, device_name=loaded.device_name,
            runtime=json.dumps(loaded.runtime, sort_keys=True, default=str),
            weight_bytes=int(loaded.weight_bytes),
            read_bandwidth_bytes_per_s=bandwidth[0] if bandwidth else None,
            bandwidth_method=bandwidth[1] if bandwidth else None,
            bandwidth_devices=int(bandwidth_devices) if bandwidth else None,
            **{k: getattr(loaded, k) for k in LOADED_FACTS},
            **(vars(energy) if energy else {}), interference=interference,
            **({"bandwidth_probes": probe["probes"], "bandwidth_threads": probe.get("threads"),
                "bandwidth_cpus": probe.get("cpus", ""), "bandwidth_flag": probe.get("flag", "")} if probe else {}))


def _model_shape(spec: dict[str, Any]) -> dict:
    """roofline.model_shape of the model directory's config.json; {} when it has none or another layout."""
    path = Path(spec.get("model_dir", "")) / "config.json"
    try:
        return roofline.model_shape(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
