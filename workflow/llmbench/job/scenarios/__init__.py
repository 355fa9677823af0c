"""Scenarios measure; engines only execute. name -> module with ``run(engine, spec, log) -> list[rows.RequestResult]``
(the job turns each result into a row with ``rows.request_row``)."""

KINDS = {"latency": "llmbench.job.scenarios.latency"}
