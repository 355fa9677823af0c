"""One read-bandwidth figure per machine and way of probing, per run: the roofline of lines that ran alike
divides by the same bandwidth, not by each job's own probe (two jobs of one env and probe read 42.6 and 49.0 GB/s
on the 2-core EPYC at 662b672, and two lines reading the same bytes per step got limits 365 and 423 tok/s).

Jobs ran alike when they share the host CPU, the device, the probe's threads, CPUs and devices read in parallel;
their figure is the median of all their probes (job/bandwidth.py: two per job), its spread (max - min) / median.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

KEY = ("pool_cpu", "device_name", "bandwidth_threads", "bandwidth_cpus", "bandwidth_devices")


def _cpu(host) -> str:
    try:
        return json.loads(host or "{}").get("cpu", "")
    except (TypeError, ValueError):
        return ""


def pool(measured: pd.DataFrame) -> pd.DataFrame:
    """``measured`` with pooled_bandwidth, pooled_spread and pooled_jobs per row (NaN / 0 where no job of the row's
    kind has probes: rows written before the probes were kept fall back to their own figure)."""
    df = measured.copy()
    df["pool_cpu"] = df["host"].map(_cpu) if "host" in df else ""
    for col in KEY[1:]:
        if col not in df:
            df[col] = None
    df["pooled_bandwidth"], df["pooled_spread"], df["pooled_jobs"] = np.nan, np.nan, 0
    if "bandwidth_probes" not in df or "run_id" not in df:
        return df
    keyed = df[list(KEY)].apply(lambda col: col.map(str)).agg("|".join, axis=1)
    for key in keyed.unique():
        rows = df[keyed == key]
        jobs = rows.drop_duplicates("run_id")
        probes = [float(b) for p in jobs["bandwidth_probes"] if p is not None for b in p]
        if not probes:
            continue
        median = float(np.median(probes))
        df.loc[rows.index, "pooled_bandwidth"] = median
        df.loc[rows.index, "pooled_spread"] = (max(probes) - min(probes)) / median
        df.loc[rows.index, "pooled_jobs"] = len(jobs)
    return df.drop(columns=["pool_cpu"])
