"""The job plan: which jobs the config asks for, which variant scores an artifact, which built directories
went stale, what the command line forces, which interpreter a job runs in.

Pure functions of the config dict, paths and argv (no Snakemake import), so the policy is unit-tested
without a Snakemake run; workflow/rules/common.smk wraps them in thin input functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench import engines
from llmbench.core.engine import has_hook
from llmbench.models import sources
from llmbench.provenance import manifest

Job = tuple[str, str, str, str]  # (model, artifact, variant, scenario)

# Jobs read the driver's interpreter from the environment, not from their params: its path differs between
# `snakemake` and `python -m snakemake` (bin/python3.11 vs bin/python), and that must not rerun jobs.
DRIVER_PYTHON_VAR = "LLMBENCH_DRIVER_PYTHON"
DRIVER_PYTHON = "$" + DRIVER_PYTHON_VAR


def jobs(config: dict[str, Any]) -> list[Job]:
    """Every (model, artifact, variant, scenario) the `benchmarks` section asks for, once each, in the order
    first asked for (entries may overlap; a job listed twice would be planned twice)."""
    seen: dict[Job, None] = {}
    for b in config["benchmarks"]:
        for m in b["models"]:
            for a in b["artifacts"]:
                for v in b["variants"]:
                    for s in b["scenarios"]:
                        seen.setdefault((m, a, v, s))
    return list(seen)


def is_serving(config: dict[str, Any], scenario: str) -> bool:
    return config["scenarios"][scenario].get("kind") == "serving"


def run_files(config: dict[str, Any]) -> list[str]:
    """The rows of every in-process job (latency scenarios): rule benchmark."""
    return [f"results/runs/{m}/{a}/{v}/{s}.parquet" for m, a, v, s in jobs(config) if not is_serving(config, s)]


def serving_files(config: dict[str, Any]) -> list[str]:
    """The rows of every serving job (a server and the streaming client): rule serve."""
    return [f"results/serving/runs/{m}/{a}/{v}/{s}.parquet" for m, a, v, s in jobs(config) if is_serving(config, s)]


def table_versions() -> dict[str, int]:
    """The version of each table a job writes (core/schema.py), for the jobs' specs."""
    from llmbench.core import schema

    return {t.name: t.version for t in (*schema.TABLES, *schema.SERVING_TABLES)}


# The report's plots and HTML tables (rules/report.smk) and their report categories; the names are those of
# analysis/plots.py LATENCY_PLOTS and analysis/report_tables.py LATENCY_TABLES (a test keeps them equal).
PLOT_CATEGORIES = {"ttft-tpot": "Latency", "quality-vs-speed": "Quality", "decode-vs-limit": "Roofline",
                   "memory-size": "Roofline", "cost": "Cost and energy", "energy": "Cost and energy"}
TABLE_CATEGORIES = {"latency": "Latency", "quality": "Quality", "roofline": "Roofline",
                    "cost-energy": "Cost and energy", "environment": "Environment"}


def final_tables(config: dict[str, Any]) -> list[str]:
    """What `rule all` asks for: the latency tables, plots and report tables when any job is in-process, the
    serving tables and plots when any serves."""
    out = []
    if run_files(config):
        out += ["results/tables/latency.md", "results/tables/latency.parquet", "results/tables/requests.parquet"]
        out += [f"results/plots/{name}.{fmt}" for name in PLOT_CATEGORIES for fmt in ("png", "svg")]
        out += [f"results/report/{name}.html" for name in TABLE_CATEGORIES]
    if serving_files(config):
        out += ["results/tables/serving.md", "results/tables/serving.parquet",
                "results/tables/serving-requests.parquet"]
        out += [f"results/plots/serving-{name}.{fmt}" for name in ("throughput", "latency") for fmt in ("png", "svg")]
    return out


def is_synthetic(model_config: dict[str, Any]) -> bool:
    """Random weights: a quality figure for them would be noise, so none is ever computed."""
    return sources.parse(model_config["source"])[0] == "synthetic"


def can_score(config: dict[str, Any], variant: str) -> bool:
    adapter = engines.adapter_class(config["variants"][variant]["engine"])
    return adapter is not None and has_hook(adapter, "score")


def scoring_variants(config: dict[str, Any], model: str, artifact: str) -> list[str]:
    """Every variant that benchmarks this artifact with an engine that can score (teacher forced), in the
    order first asked for: each scores the artifact itself, with its own engine and options."""
    return list(dict.fromkeys(v for m, a, v, _ in jobs(config) if (m, a) == (model, artifact) and can_score(config, v)))


def quality_jobs(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(model, artifact, variant) of every quality job: each benchmarked variant of a real (not synthetic)
    model whose engine can score; none when the config has no `quality` section."""
    if "quality" not in config:
        return []
    pairs = dict.fromkeys((m, a) for m, a, _, _ in jobs(config))
    return [(m, a, v) for m, a in pairs if not is_synthetic(config["models"][m])
            for v in scoring_variants(config, m, a)]


def quality_carrier(config: dict[str, Any], model: str, artifact: str, variant: str) -> str | None:
    """The scenario whose benchmark job also scores this line, with the engine it has loaded (engines load once:
    a second job would load the same engine again; vLLM's start alone is 35-45 s on 2 cores): the line's first
    in-process (latency) job in plan order. None: the line only serves, and rule quality loads the engine."""
    return first_latency_scenarios(config).get((model, artifact, variant))


def first_latency_scenarios(config: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """(model, artifact, variant) -> the scenario of its first in-process (latency) job, in plan order; one pass
    over the jobs (the planner asks for every benchmark job: a pass per job would make planning quadratic)."""
    first: dict[tuple[str, str, str], str] = {}
    for m, a, v, s in jobs(config):
        if not is_serving(config, s):
            first.setdefault((m, a, v), s)
    return first


def quality_carriers(config: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """(model, artifact, variant) of every quality job that a benchmark job carries -> that job's scenario."""
    first = first_latency_scenarios(config)
    return {line: first[line] for line in quality_jobs(config) if line in first}


def carried_quality_file(model: str, artifact: str, variant: str, scenario: str) -> str:
    """The quality table a benchmark job writes beside its rows (empty unless the job carries the line's
    quality, :func:`quality_carrier`)."""
    return f"results/runs/{model}/{artifact}/{variant}/{scenario}.quality.parquet"


def quality_file(config: dict[str, Any], model: str, artifact: str, variant: str,
                 first: dict[tuple[str, str, str], str] | None = None) -> str:
    """Where a line's quality row is: beside its carrier benchmark's rows, else rule quality's output
    (``first``: :func:`first_latency_scenarios` of the config, when the caller has it)."""
    scenario = (first_latency_scenarios(config) if first is None else first).get((model, artifact, variant))
    if scenario is not None:
        return carried_quality_file(model, artifact, variant, scenario)
    return f"results/quality/{model}/{artifact}/{variant}.parquet"


def quality_files(config: dict[str, Any]) -> list[str]:
    """One quality file per quality job (:func:`quality_jobs`)."""
    first = first_latency_scenarios(config)
    return [quality_file(config, m, a, v, first) for m, a, v in quality_jobs(config)]


def serving_quality_files(config: dict[str, Any]) -> list[str]:
    """The quality files of the (model, artifact, variant) lines that serve: quality beside serving speed."""
    served = {(m, a, v) for m, a, v, s in jobs(config) if is_serving(config, s)}
    first = first_latency_scenarios(config)
    return [quality_file(config, m, a, v, first) for m, a, v in quality_jobs(config) if (m, a, v) in served]


def scores_in_benchmark(config: dict[str, Any], model: str, artifact: str, variant: str, scenario: str,
                        carriers: dict[tuple[str, str, str], str] | None = None) -> bool:
    """Whether this benchmark job scores its line's quality after measuring (it is the line's carrier);
    ``carriers``: :func:`quality_carriers` of the config, when the caller has it (the planner: once per plan)."""
    carriers = quality_carriers(config) if carriers is None else carriers
    return carriers.get((model, artifact, variant)) == scenario


def quality_reference(config: dict[str, Any], model: str, artifact: str, variant: str,
                      first: dict[tuple[str, str, str], str] | None = None) -> list[str]:
    """The reference line's quality file, which a line's quality is compared with (none for the reference
    itself). The reference line (quality.reference_artifact x quality.reference_variant) must be able to
    score: every comparison is against the distribution it stores."""
    ref_a, ref_v = config["quality"]["reference_artifact"], config["quality"]["reference_variant"]
    if (artifact, variant) == (ref_a, ref_v):
        return []
    if not can_score(config, ref_v):
        raise ValueError(f"quality.reference_variant = {ref_v!r}: engine {config['variants'][ref_v]['engine']!r} "
                         "cannot score, so it cannot be the quality reference; pick a variant whose engine has score()")
    return [quality_file(config, model, ref_a, ref_v, first)]


def built_directories(config: dict[str, Any]) -> list[str]:
    """The model and artifact directories the jobs read, sorted."""
    dirs = {f"resources/models/{m}" for m, _, _, _ in jobs(config)}
    dirs |= {f"resources/artifacts/{m}/{a}" for m, a, _, _ in jobs(config)}
    return sorted(dirs)


def stale_directories(config: dict[str, Any], root: Path = Path(".")) -> dict[str, list[str]]:
    """Built directories (under root) that exist but no longer match their manifest: a quick stat check,
    then sha256 of the files whose size or mtime changed. Keyed by the path relative to root."""
    found = {}
    for d in built_directories(config):
        if (root / d).exists():
            problems = manifest.problems(root / d, quick=True)
            if problems:
                found[d] = problems
    return found


def forced_on_command_line(argv: list[str]) -> tuple[bool, set[str]]:
    """(--forceall/-F given, paths/rules given to --forcerun/-R) from Snakemake's arguments (argv without
    the program name). Read from argv because Snakemake's DAG settings do not exist yet while the
    Snakefile is parsed."""
    forceall, forced, collecting = False, set(), False
    for arg in argv:
        if arg in ("-F", "--forceall"):
            forceall = True
        if arg.startswith("--forcerun="):
            forced.add(arg.split("=", 1)[1].rstrip("/"))
        elif arg in ("-R", "--forcerun"):
            collecting = True
        elif collecting and not arg.startswith("-"):
            forced.add(arg.rstrip("/"))
        else:
            collecting = False
    return forceall, forced


def stale_to_stop(config: dict[str, Any], argv: list[str], root: Path = Path(".")) -> dict[str, list[str]]:
    """Stale directories that stop the run: all of them, except those the user asked to rebuild (--forcerun
    DIR, or --forceall), which are not an error since they get rebuilt. Not even checked under --forceall."""
    forceall, forced = forced_on_command_line(argv)
    if forceall:
        return {}
    return {d: p for d, p in stale_directories(config, root).items() if d not in forced}


def stale_message(stale: dict[str, list[str]]) -> str:
    """Why the run stops and the exact flag that rebuilds the stale directories and what was measured
    from them."""
    lines = [f"{d}:\n    - " + "\n    - ".join(p) for d, p in stale.items()]
    return (
        "these directories no longer match their manifest.json, so nothing built from them will be measured:\n  "
        + "\n  ".join(lines)
        + "\nRebuild them, and everything measured from them, by adding to the same command: --forcerun "
        + " ".join(stale)
    )


def env_backend(config: dict[str, Any], use_conda: bool) -> str:
    """Who builds the jobs' envs: conda under --sdm conda (the config is then ignored), else
    `software_envs.backend` (default venv)."""
    return "conda" if use_conda else config.get("software_envs", {}).get("backend", "venv")


def env_build_flags(config: dict[str, Any], env_name: str) -> str:
    """build-env's flags for `software_envs.wheelhouse` (<wheelhouse>/<env>: install with no index) and
    `software_envs.provided_python` (the env sees that interpreter's packages); empty when neither is set.
    They are build_env's params: setting or changing either rebuilds the envs."""
    import shlex

    s = config.get("software_envs") or {}
    flags = []
    if s.get("wheelhouse"):
        flags += ["--wheelhouse", str(Path(s["wheelhouse"]) / env_name)]
    if s.get("provided_python"):
        flags += ["--provided-python", str(s["provided_python"])]
    return shlex.join(flags)


def env_inputs(backend: str, env_name: str) -> list[str]:
    """The env.json a job's venv is complete with; nothing unless the backend is venv."""
    return [f"resources/envs/{env_name}/env.json"] if backend == "venv" else []


def env_python(backend: str, env_name: str) -> str:
    """The interpreter that runs the harness in a job: the venv's, conda's env's `python`, or the driver's."""
    if backend == "venv":
        return f"resources/envs/{env_name}/bin/python"
    return "python" if backend == "conda" else DRIVER_PYTHON
