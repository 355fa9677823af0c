"""Per-job wall times of a Snakemake run, read from its log (the file `snakemake` prints to, or
.snakemake/log/*.snakemake.log): one TSV line per job (rule, wildcards, seconds) and the seconds per rule,
so a run's time can be split into env builds, fetch, artifact builds, benchmarks, quality and the rest.

    python benchmarks/job_times.py LOG [--tsv OUT]

A job's start is the timestamp line Snakemake prints before its ``rule``/``localrule`` block, its end the one
before ``Finished jobid: N``; jobs that never finished are listed with an empty time. Timestamps have whole
seconds, so each figure is within 1 s.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
FIELD = re.compile(r"^\s+(jobid|wildcards): (.*)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def jobs(lines) -> list[dict]:
    """[{jobid, rule, wildcards, start, end}] in start order (start/end datetimes; end None if unfinished)."""
    stamp, current, found = None, None, {}
    for line in lines:
        line = line.rstrip("\n")
        if m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(line):
            current = {"rule": m.group(1), "wildcards": "", "start": stamp, "end": None}
        elif current is not None and (m := FIELD.match(line)):
            if m.group(1) == "jobid":
                found[m.group(2).strip()] = current
            else:
                current["wildcards"] = m.group(2).strip()
        elif m := FINISHED.match(line):
            if m.group(1) in found:
                found[m.group(1)]["end"] = stamp
        elif not line.strip():
            current = None
    return sorted(found.values(), key=lambda j: j["start"] or datetime.min)


def seconds(job: dict) -> float | None:
    return (job["end"] - job["start"]).total_seconds() if job["start"] and job["end"] else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--tsv", type=Path, help="also write the per-job table here")
    args = ap.parse_args(argv)
    found = jobs(args.log.read_text(errors="replace").splitlines())
    if not found:
        print(f"{args.log}: no Snakemake jobs found", file=sys.stderr)
        return 1
    rows = ["rule\twildcards\tseconds"]
    per_rule = defaultdict(float)
    for j in found:
        s = seconds(j)
        rows.append(f"{j['rule']}\t{j['wildcards']}\t{'' if s is None else int(s)}")
        per_rule[j["rule"]] += s or 0
    table = "\n".join(rows) + "\n"
    if args.tsv:
        args.tsv.write_text(table)
    print(table, end="")
    starts = [j["start"] for j in found if j["start"]]
    ends = [j["end"] for j in found if j["end"]]
    print("\nper rule (s): " + ", ".join(f"{r} {int(s)}" for r, s in sorted(per_rule.items(), key=lambda x: -x[1])))
    if starts and ends:
        print(f"first job start to last job end: {int((max(ends) - min(starts)).total_seconds())} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
