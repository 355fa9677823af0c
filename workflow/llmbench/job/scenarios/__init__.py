"""Scenarios measure; engines only execute. name -> module with ``run(engine, loaded, spec, base_row)``."""

KINDS = {"latency": "llmbench.job.scenarios.latency"}
