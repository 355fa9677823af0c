"""One benchmark job: verify the artifact, load it in an engine, run a scenario, write rows atomically.

A job that fails writes no Parquet (Snakemake then sees no output); the rows it had are in its log.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llmbench import engines, provenance
from llmbench.provenance import manifest
from llmbench.analysis import roofline
from llmbench.job import rows
from llmbench.engines.base import EngineUnavailable
from llmbench.job.scenarios import KINDS as SCENARIOS


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def run_job(spec: dict[str, Any], out: Path, log=print) -> Path:
    artifact_dir = Path(spec["artifact_dir"])
    art = manifest.verify(artifact_dir)  # full hash check: a stale artifact is never measured
    model_manifest = manifest.read(Path(spec["model_dir"]))
    if art.get("input_model_hash") != model_manifest["content_hash"]:
        raise manifest.StaleArtifactError(
            f"{artifact_dir} was built from model {art.get('input_model_hash', '?')[:12]}… but "
            f"{spec['model_dir']} is now {model_manifest['content_hash'][:12]}…; rebuild the artifact")
    variant = spec["variant"]
    engine = engines.create(variant["engine"])
    log(f"loading {artifact_dir} with {variant['engine']} ({spec['variant_name']}) options {variant.get('options', {})}")
    t = time.perf_counter()
    try:
        if art.get("status") == "unverified":
            raise EngineUnavailable(f"artifact {spec['artifact']} is unverified: {art.get('unverified_reason')}")
        device = variant.get("options", {}).get("device", "cpu")
        bandwidth, bandwidth_method = roofline.read_bandwidth("cuda" if device in ("cuda", "auto") and _has_cuda() else "cpu")
        log(f"read bandwidth {bandwidth / 1e9:.1f} GB/s ({bandwidth_method}), measured before loading")
        loaded = engine.load(artifact_dir, art, variant.get("options", {}))
    except EngineUnavailable as e:
        log(f"UNVERIFIED: {e}")
        return _write([unverified_row(spec, art, model_manifest, str(e))], out)
    log(f"loaded in {time.perf_counter() - t:.1f} s on {loaded.device} ({loaded.device_name}); runtime {loaded.runtime}")

    base = {
        "model": spec["model"], "artifact": spec["artifact"], "engine": variant["engine"],
        "variant": spec["variant_name"], "scenario": spec["scenario_name"], "status": "verified",
        "synthetic_weights": bool(art.get("synthetic")),
        "variant_options": json.dumps(variant.get("options", {}), sort_keys=True),
        "runtime": "",  # filled after the run: some facts (compile) are known only then
        "model_hash": model_manifest["content_hash"], "artifact_hash": art["content_hash"],
        "artifact_bytes": art["total_bytes"],
        "engine_version": loaded.engine_version,
        "library_versions": json.dumps(loaded.library_versions, sort_keys=True),
        "device": loaded.device, "device_name": loaded.device_name,
        "host": json.dumps(provenance.host(), sort_keys=True),
        "env_hash": os.environ.get("LLMBENCH_ENV_HASH", ""),
        "git_commit": provenance.git_commit(),  # of the working directory: where snakemake runs
        "config_hash": manifest.sha256_json({k: spec[k] for k in ("model_config", "artifact_config", "variant", "scenario")}),
        "run_id": uuid.uuid4().hex[:16],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "schema_version": rows.SCHEMA_VERSION,
        "weight_bytes": int(loaded.runtime.get("weight_bytes") or art["total_bytes"]),
        "read_bandwidth_bytes_per_s": bandwidth,
        "bandwidth_method": bandwidth_method,
    }
    scenario = importlib.import_module(SCENARIOS[spec["scenario"]["kind"]])
    result = scenario.run(engine, spec, base, log=log)
    runtime = json.dumps(loaded.runtime, sort_keys=True, default=str)
    for r in result:  # facts some engines know only after running (compile, unpacked weights)
        r["runtime"] = runtime
        r["weight_bytes"] = int(loaded.runtime.get("weight_bytes") or art["total_bytes"])
    return _write(result, out)


def _write(result: list[dict[str, Any]], out: Path) -> Path:
    table = rows.to_table(result)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return out


def unverified_row(spec: dict[str, Any], art: dict[str, Any], model_manifest: dict[str, Any], reason: str) -> dict:
    """The one row of a job whose engine cannot run here: what was asked, why nothing was measured."""
    row = {c.name: None for c in rows.COLUMNS}
    variant = spec["variant"]
    row.update({
        "request_index": 0, "prompt_id": "", "repeat": 0, "warmup": False, "success": False, "error": reason,
        "requested_output_tokens": int(spec["scenario"]["max_new_tokens"]), "itl_s": [], "output_ids": [],
        "model": spec["model"], "artifact": spec["artifact"], "engine": variant["engine"],
        "variant": spec["variant_name"], "scenario": spec["scenario_name"], "status": "unverified",
        "synthetic_weights": bool(art.get("synthetic")),
        "variant_options": json.dumps(variant.get("options", {}), sort_keys=True), "runtime": "{}",
        "model_hash": model_manifest["content_hash"], "artifact_hash": art["content_hash"],
        "artifact_bytes": art["total_bytes"], "host": json.dumps(provenance.host(), sort_keys=True),
        "env_hash": os.environ.get("LLMBENCH_ENV_HASH", ""), "git_commit": provenance.git_commit(),
        "config_hash": manifest.sha256_json({k: spec[k] for k in ("model_config", "artifact_config", "variant", "scenario")}),
        "run_id": uuid.uuid4().hex[:16], "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "schema_version": rows.SCHEMA_VERSION,
    })
    return row
