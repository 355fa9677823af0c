"""How long `snakemake -n` takes on a plan of about 500 jobs: fresh (nothing built) and a no-op rerun (everything
done, the stale-artifact check included). Goal (issue 17): under 3 s each on a 2-core machine.

The config is generated: the default's reference artifact and two HF variants, times ``--scenarios`` latency
scenarios that differ only in max_new_tokens (2 x 250 = 500 benchmark jobs, plus fetch, build, quality, merge).
For the no-op case the model is fetched and the reference artifact built for real (so the stale check reads a
real manifest); the benchmark, quality and table outputs are then stood in by empty files and `snakemake --touch`
records them as done (running 500 benchmark jobs would take hours and tells nothing about planning). Each case
runs ``--repeats`` times; the JSON line printed (and written to --out) has every wall time and the machine.

    python benchmarks/planning_speed.py [--scenarios 250] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from llmbench import provenance

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("Snakefile", "pyproject.toml"):
        shutil.copy(REPO / f, dest / f)
    for d in ("workflow", "config", "envs", "profiles"):
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def generated_config(n_scenarios: int) -> dict:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    base = cfg["scenarios"]["latency"]
    cfg["artifacts"] = {"q4_1-dequant-fp32": cfg["artifacts"]["q4_1-dequant-fp32"]}
    cfg["variants"] = {k: cfg["variants"][k] for k in ("hf-sdpa", "hf-eager")}
    cfg["scenarios"] = {f"latency-{i:03d}": {**base, "max_new_tokens": i} for i in range(1, n_scenarios + 1)}
    cfg["benchmarks"] = [{"models": ["smollm2-135m"], "artifacts": ["q4_1-dequant-fp32"],
                          "variants": ["hf-sdpa", "hf-eager"], "scenarios": sorted(cfg["scenarios"])}]
    cfg["software_envs"] = {"backend": "none"}  # planning, not env building, is measured
    return cfg


def snakemake(wd: Path, *args: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--resources", "gpu=1"]  # targets first
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dt, proc.stdout + proc.stderr


def planned_jobs(out: str) -> int:
    if "Nothing to be done" in out:
        return 0
    stats = out.split("Job stats:")[1]
    return int(next(line.split()[1] for line in stats.splitlines() if line.startswith("total")))


def stand_in_outputs(wd: Path) -> None:
    """Empty files for every benchmark, quality and table output the dry run lists (not the real builds)."""
    _, out = snakemake(wd, "--summary")
    for line in out.splitlines()[1:]:
        path = line.split("\t")[0]
        if path.startswith("results/"):
            (wd / path).parent.mkdir(parents=True, exist_ok=True)
            (wd / path).touch()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmbench-planning-") as tmp:
        wd = copy_workflow(Path(tmp) / "wd")
        (wd / "config/config.yaml").write_text(yaml.safe_dump(generated_config(a.scenarios), sort_keys=False))
        fresh = [snakemake(wd, "-n") for _ in range(a.repeats)]
        jobs = planned_jobs(fresh[0][1])
        t = time.perf_counter()
        snakemake(wd, "resources/artifacts/smollm2-135m/q4_1-dequant-fp32")  # real fetch + build
        build_s = time.perf_counter() - t
        stand_in_outputs(wd)
        snakemake(wd, "--touch")
        noop = [snakemake(wd, "-n") for _ in range(a.repeats)]
        assert all(planned_jobs(out) == 0 for _, out in noop), noop[0][1][-2000:]
    result = {
        "benchmark": "planning_speed", "jobs_planned_fresh": jobs,
        "fresh_dry_run_s": [round(dt, 3) for dt, _ in fresh], "noop_dry_run_s": [round(dt, 3) for dt, _ in noop],
        "fresh_median_s": round(statistics.median(dt for dt, _ in fresh), 3),
        "noop_median_s": round(statistics.median(dt for dt, _ in noop), 3),
        "fetch_and_build_s": round(build_s, 1), "goal_s": 3.0,
        "machine": {"cpu": provenance.cpu_name(), "cpu_flags": provenance.cpu_flags(),
                    "cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "snakemake": subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True,
                                    text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    line = json.dumps(result)
    print(line)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
