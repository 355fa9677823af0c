"""Command line of the harness; the workflow's rules call these subcommands, users call ``inspect``/``verify``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _spec(text: str) -> dict:
    return json.loads(text)


def cmd_fetch_model(a):
    from llmbench.provenance import atomic
    from llmbench import models
    spec = _spec(a.spec)
    with atomic.directory(a.out) as tmp:
        models.fetch(spec["name"], spec["config"], tmp)


def cmd_build_artifact(a):
    from llmbench import artifacts
    from llmbench.provenance import atomic
    spec = _spec(a.spec)
    with atomic.directory(a.out) as tmp:
        artifacts.build(spec["method"], Path(spec["model_dir"]), spec["params"], tmp)


def cmd_bench(a):
    from llmbench.job import bench
    bench.run_job(_spec(a.spec), Path(a.out), log=lambda m: print(m, flush=True),
                  quality_out=Path(a.quality_out) if a.quality_out else None)


def cmd_serve(a):
    from llmbench.serving import job
    job.run_job(_spec(a.spec), Path(a.out), Path(a.points), Path(a.server_log), log=lambda m: print(m, flush=True))


def cmd_merge_serving(a):
    from llmbench.analysis import serving
    serving.merge(a.runs, Path(a.out_dir), a.quality, pricing=_spec(a.pricing))


def cmd_quality(a):
    from llmbench.analysis import quality
    quality.run_job(_spec(a.spec), Path(a.out), log=lambda m: print(m, flush=True))


def cmd_merge(a):
    from llmbench.analysis import tables
    tables.merge(a.runs, Path(a.out_dir), quality_files=a.quality, quality_spec=_spec(a.quality_spec),
                 pricing=_spec(a.pricing))


def cmd_plots(a):
    from llmbench.analysis import plots
    draw = plots.draw_serving if a.serving else plots.draw_latency
    for path in draw(Path(a.tables), Path(a.out)):
        print(f"wrote {path}", flush=True)


def cmd_report_tables(a):
    from llmbench.analysis import report_tables
    for path in report_tables.write_latency(Path(a.tables), Path(a.out)):
        print(f"wrote {path}", flush=True)


def cmd_verify(a):
    from llmbench.provenance import manifest
    bad = 0
    for p in a.paths:
        found = manifest.problems(Path(p))
        print(f"{p}: {'OK' if not found else 'STALE'}")
        for f in found:
            print(f"  - {f}")
        bad += bool(found)
    return 1 if bad else 0


def cmd_inspect(a):
    from llmbench.provenance import inspect
    print(inspect.describe(Path(a.path), verify=not a.no_verify))
    return 0


def _write_doc(text: str, out) -> None:
    """A generated document to ``--out`` when given, else to stdout."""
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_schema_doc(a):
    from llmbench.core import schema
    _write_doc(schema.markdown_doc(), a.out)


def cmd_options_doc(a):
    from llmbench.planning import options
    _write_doc(options.markdown_doc(), a.out)


def cmd_build_env(a):
    from llmbench.planning import env_build
    return env_build.main_build(a.name, a.file, a.prefix, a.base_dir, a.installer, a.wheelhouse, a.provided_python)


def cmd_wheelhouse(a):
    from llmbench.planning import wheelhouse
    return wheelhouse.main(a.env, a.dest, a.python, a.platform, a.provided, a.envs_dir)


ENGINE_JOBS = ("bench", "quality")  # commands that load an engine in this process


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="llmbench", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("fetch-model"); s.add_argument("--spec", required=True); s.add_argument("--out", required=True, type=Path); s.set_defaults(fn=cmd_fetch_model)
    s = sub.add_parser("build-artifact"); s.add_argument("--spec", required=True); s.add_argument("--out", required=True, type=Path); s.set_defaults(fn=cmd_build_artifact)
    s = sub.add_parser("bench"); s.add_argument("--spec", required=True); s.add_argument("--out", required=True)
    s.add_argument("--quality-out", help="the quality table: the line's row when the spec has `quality` (scored after "
                   "the measured requests, same engine), else empty"); s.set_defaults(fn=cmd_bench)
    s = sub.add_parser("serve", help="one serving job: start the engine's server, run the sweep, write rows")
    s.add_argument("--spec", required=True); s.add_argument("--out", required=True); s.add_argument("--points", required=True)
    s.add_argument("--server-log", required=True); s.set_defaults(fn=cmd_serve)
    s = sub.add_parser("merge-serving"); s.add_argument("--out-dir", required=True); s.add_argument("--runs", nargs="*", default=[])
    s.add_argument("--quality", nargs="*", default=[]); s.add_argument("--pricing", default="[]", help="config `pricing` as JSON")
    s.set_defaults(fn=cmd_merge_serving)
    s = sub.add_parser("quality"); s.add_argument("--spec", required=True); s.add_argument("--out", required=True); s.set_defaults(fn=cmd_quality)
    s = sub.add_parser("merge"); s.add_argument("--out-dir", required=True); s.add_argument("--runs", nargs="*", default=[])
    s.add_argument("--quality", nargs="*", default=[]); s.add_argument("--quality-spec", default="{}")
    s.add_argument("--pricing", default="[]", help="config `pricing` as JSON"); s.set_defaults(fn=cmd_merge)
    s = sub.add_parser("plots", help="draw the report's plots from the merged tables")
    s.add_argument("--tables", required=True); s.add_argument("--out", required=True)
    s.add_argument("--serving", action="store_true", help="the serving plots (serving.parquet)"); s.set_defaults(fn=cmd_plots)
    s = sub.add_parser("report-tables", help="write the report's HTML tables from the merged tables")
    s.add_argument("--tables", required=True); s.add_argument("--out", required=True); s.set_defaults(fn=cmd_report_tables)
    s = sub.add_parser("verify", help="check directories against their manifests"); s.add_argument("paths", nargs="+"); s.set_defaults(fn=cmd_verify)
    s = sub.add_parser("inspect", help="what is this model/artifact directory and how was it made")
    s.add_argument("path"); s.add_argument("--no-verify", action="store_true"); s.set_defaults(fn=cmd_inspect)
    s = sub.add_parser("build-env", help="build the venv an envs/<env>.yaml file describes (no conda)")
    s.add_argument("--name", required=True); s.add_argument("--file", required=True); s.add_argument("--prefix", required=True)
    s.add_argument("--base-dir"); s.add_argument("--installer", choices=("pip", "uv", "auto"))
    s.add_argument("--wheelhouse", help="install from this wheelhouse (llmbench wheelhouse) with no index")
    s.add_argument("--provided-python", help="the env also sees this interpreter's packages"); s.set_defaults(fn=cmd_build_env)
    s = sub.add_parser("wheelhouse", help="download an env's requirements, resolved for a target machine, as wheels "
                       "(for installs with no network: software_envs.wheelhouse)")
    s.add_argument("env", help="an env name (envs/<env>.yaml) or an env file")
    s.add_argument("-d", "--dest", required=True, help="the wheelhouse folder (made if missing)")
    s.add_argument("--python", help="the target's python X.Y (default: the env file's, else this one)")
    s.add_argument("--platform", help="the target's platform tag, e.g. manylinux_2_28_x86_64 (default: this machine's)")
    s.add_argument("--provided", help="name==version lines of what the target already has: constrain the "
                   "resolution and leave them out"); s.add_argument("--envs-dir", default="envs")
    s.set_defaults(fn=cmd_wheelhouse)
    s = sub.add_parser("schema-doc", help="print the table schemas (requests, latency, quality) as markdown"); s.add_argument("--out"); s.set_defaults(fn=cmd_schema_doc)
    s = sub.add_parser("options-doc", help="print every engine's options and artifact method's params as markdown")
    s.add_argument("--out"); s.set_defaults(fn=cmd_options_doc)
    a = p.parse_args(argv)
    rc = a.fn(a) or 0
    if a.cmd in ENGINE_JOBS and argv is None:
        # The job's output is written (atomically) and its engine closed: leave without interpreter teardown,
        # where an engine library's native threads can abort the process after the fact ("terminate called
        # without an active exception" from vLLM's CPU build, seen in CI on 2026-12-04) and fail a finished job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
