"""One benchmark job: verify the artifact, load it in an engine, run a scenario, write rows atomically.

A failed request is a row (success false, its error) and the job goes on. The job itself fails, and writes no
Parquet (Snakemake then sees no output), only when no measured request succeeded; its rows are then in its log.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from llmbench import engines
from llmbench.core import energy, roofline, schema
from llmbench.core.engine import EngineUnavailable, Placement
from llmbench.job import bandwidth, context, interference, rows
from llmbench.job.context import JobContext
from llmbench.job.scenarios import KINDS as SCENARIOS
from llmbench.provenance import atomic, manifest


class NothingMeasured(RuntimeError):
    """No measured request of the job succeeded: there is no figure to write."""


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def _probe(place: Placement, loaded) -> bandwidth.Probe:
    """The bandwidth probe of the placement's device, with the threads and CPUs the engine ran (job/bandwidth.py):
    the CPU's when torch sees no CUDA device (an ``auto`` variant then runs on the CPU), saying so."""
    if place.device == "cuda" and not _has_cuda():
        return bandwidth.Probe(place, loaded, cuda=False,
                               why_cpu="(placement cuda, but torch sees no CUDA device in this env)")
    return bandwidth.Probe(place, loaded, cuda=place.device == "cuda")


def _inputs(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(artifact manifest, model manifest), both fully verified (every file's content hash recomputed, and each
    manifest's own hash): a stale artifact, or one built from a model changed since, is never measured."""
    artifact_dir = Path(spec["artifact_dir"])
    art = manifest.verify(artifact_dir)
    model_manifest = manifest.verify(Path(spec["model_dir"]))
    if art.get("input_model_hash") != model_manifest["content_hash"]:
        raise manifest.StaleArtifactError(
            f"{artifact_dir} was built from model {art.get('input_model_hash', '?')[:12]}… but "
            f"{spec['model_dir']} is now {model_manifest['content_hash'][:12]}…; rebuild the artifact")
    return art, model_manifest


def _check_measured(results: list[rows.RequestResult], log) -> None:
    """NothingMeasured when no measured request succeeded; else log how many failed, if any."""
    measured = [r for r in results if not r.warmup]
    failed = [r for r in measured if r.error]
    if len(failed) == len(measured):
        first = f"; the first: {failed[0].error}" if failed else ""
        raise NothingMeasured(f"none of the {len(measured)} measured requests succeeded{first}. The job writes "
                              "no table; every request's row is in this log (lines starting with 'row ').")
    if failed:
        log(f"{len(failed)} of {len(measured)} measured requests FAILED; they are rows with their error, and the "
            "summary line will count them, leave them out of its statistics and be marked invalid")


def _write_quality(spec: dict[str, Any], quality_out: Path | None, engine, loaded, art: dict[str, Any], log,
                   writes: bool = True) -> None:
    """The line's quality row, scored now with the engine the job measured (spec ``quality`` given: this job
    carries the line's quality, planning/plan.py quality_carrier), after the measured window; else an empty
    quality table (the declared output of every benchmark job). Nothing when no path is given. ``writes`` False
    (a tensor-parallel rank other than 0): score the same way, for the forwards rank 0 needs, and write nothing."""
    if quality_out is None:
        return
    from llmbench.analysis import quality

    if spec.get("quality") and engine is not None:
        log(f"quality: scoring {spec['artifact']} with the loaded engine (after the measured requests)")
        try:
            quality.score_loaded(spec, quality_out if writes else None, log, engine, loaded, art)
        except Exception as e:  # noqa: BLE001 - the line's quality status says why; the speed rows are kept
            reason = f"{type(e).__name__}: {e}"
            log(f"quality: scoring FAILED ({reason}); the line's quality status says so, its speed rows are kept")
            if writes:
                atomic.write_parquet(schema.QUALITY.from_records([quality.failed_row(spec, art, loaded, reason)]),
                                     quality_out)
    elif writes:
        atomic.write_parquet(schema.QUALITY.from_records([]), quality_out)


def _silent(_message: str) -> None:
    pass


def run_job(spec: dict[str, Any], out: Path, log=print, quality_out: Path | None = None) -> Path:
    """The job; under tensor parallel (started by torchrun) every rank runs it, and all ranks load, encode,
    generate and score alike (each forward needs every rank), but only rank 0 probes bandwidth, meters energy
    and interference, logs and writes the rows and the quality table."""
    started = context.now()
    art, model_manifest = _inputs(spec)
    artifact_dir = Path(spec["artifact_dir"])
    variant = spec["variant"]
    options = variant.get("options", {})
    writes = engines.rank() == 0
    log = log if writes else _silent
    engine = engines.create(variant["engine"])
    log(f"loading {artifact_dir} with {variant['engine']} ({spec['variant_name']}) options {options}")
    t = time.perf_counter()
    try:
        if art.get("status") == "unverified":
            raise EngineUnavailable(f"artifact {spec['artifact']} is unverified: {art.get('unverified_reason')}")
        place = engines.placement(variant["engine"], options)
        loaded = engine.load(artifact_dir, art, options)
    except EngineUnavailable as e:
        log(f"UNVERIFIED: {e}")
        if not writes:
            return out
        ctx = JobContext.build(spec, art, model_manifest, started)
        _write_quality(spec, quality_out, None, None, art, log)  # no engine ran: no quality figure either
        return atomic.write_parquet(rows.to_table([rows.unverified_row(ctx, str(e))]), out)
    log(f"loaded in {time.perf_counter() - t:.1f} s on {loaded.device} ({loaded.device_name}); runtime {loaded.runtime}")
    return _measure(spec, out, quality_out, engine, loaded, (art, model_manifest, started), place, log, writes)


def _measure(spec, out, quality_out, engine, loaded, inputs, place, log, writes: bool) -> Path:
    """Run the scenario on the loaded engine, write its rows (and the line's quality), close the engine."""
    art, model_manifest, started = inputs
    probe = meter = monitor = None
    if writes:
        probe = _probe(place, loaded)
        probe.measure()
        log(f"read bandwidth before the warm-ups: {probe.figures[0] / 1e9:.1f} GB/s ({probe.methods[0]})"
            if probe.figures else f"read bandwidth: {'; '.join(probe.notes)}")
        meter = energy.Meter(loaded.device, max(1, place.gpus))
        meter.measure_idle()
        log(f"energy: {meter.counter.method}, idle {meter.idle_w:.1f} W" if meter.counter else f"energy: {meter.why_not}")
        monitor = interference.Monitor(loaded.device, max(1, place.gpus))
    scenario = importlib.import_module(SCENARIOS[spec["scenario"]["kind"]])
    table = None
    try:
        results = scenario.run(engine, spec, log=log, meter=meter, monitor=monitor)
        _check_measured(results, log)  # every rank: one that stopped here would leave the others' forwards alone
        if writes:
            table = _rows(spec, art, model_manifest, started, loaded, results, probe, meter, monitor, log)
        _write_quality(spec, quality_out, engine, loaded, art, log, writes)
    finally:
        engines.close(engine)  # after the last request and the scoring
    return atomic.write_parquet(table, out) if writes else out


def _rows(spec, art, model_manifest, started, loaded, results, probe, meter, monitor, log):
    """The job's rows, after the run: runtime and weight_bytes as they ran (some engines learn them at the first
    request), recorded before quality scoring touches the engine again; the second bandwidth probe and the
    interference seen over the measured window go with them."""
    probe.measure()
    probed = probe.columns()
    log(f"read bandwidth probes: {[round(b / 1e9, 1) for b in probed['probes']]} GB/s"
        + (f"; FLAG: {probed['flag']}" if probed.get("flag") else ""))
    seen = monitor.figures()
    log(f"interference over the measured window: {interference.to_json(seen)}"
        + (f"; NOISY: {interference.verdict(seen)}" if interference.verdict(seen) else ""))
    ctx = JobContext.build(spec, art, model_manifest, started, loaded, probed["bandwidth"],
                           probed.get("devices", 1), meter.result(), interference.to_json(seen), probed)
    return rows.to_table([rows.request_row(ctx, r) for r in results])
