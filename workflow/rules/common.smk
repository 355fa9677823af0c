import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from llmbench import artifacts, engines
from llmbench.planning import envs
from llmbench.provenance import manifest
from llmbench.planning import config as llmbench_config


validate(config, schema="../schemas/config.schema.yaml")
llmbench_config.check(config, Path(workflow.basedir))


wildcard_constraints:
    model="[^/]+",
    artifact="[^/]+",
    variant="[^/]+",
    scenario="[^/]+",




def jobs():
    """Every (model, artifact, variant, scenario) the `benchmarks` section asks for, once each."""
    seen = []
    for b in config["benchmarks"]:
        for m in b["models"]:
            for a in b["artifacts"]:
                for v in b["variants"]:
                    for s in b["scenarios"]:
                        if (m, a, v, s) not in seen:
                            seen.append((m, a, v, s))
    return seen


def run_files():
    return [f"results/runs/{m}/{a}/{v}/{s}.parquet" for m, a, v, s in jobs()]


def quoted(obj):
    """A JSON spec as one shell word; it is also the rule's params, so a change to it reruns the job."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def model_spec(wildcards):
    return quoted({"name": wildcards.model, "config": config["models"][wildcards.model]})


def artifact_spec(wildcards):
    a = config["artifacts"][wildcards.artifact]
    return quoted(
        {
            "method": a["method"],
            "params": llmbench_config.resolved_params(config, wildcards.artifact),
            "model_dir": f"resources/models/{wildcards.model}",
        }
    )


def bench_spec(wildcards):
    return quoted(
        {
            "model": wildcards.model,
            "artifact": wildcards.artifact,
            "variant_name": wildcards.variant,
            "scenario_name": wildcards.scenario,
            "model_dir": f"resources/models/{wildcards.model}",
            "artifact_dir": f"resources/artifacts/{wildcards.model}/{wildcards.artifact}",
            "model_config": config["models"][wildcards.model],
            "artifact_config": {
                **config["artifacts"][wildcards.artifact],
                "params": llmbench_config.resolved_params(config, wildcards.artifact),
            },
            "variant": {
                **config["variants"][wildcards.variant],
                "options": llmbench_config.resolved_options(config, wildcards.variant),
            },
            "scenario": config["scenarios"][wildcards.scenario],
        }
    )


def scenario_prompts(wildcards):
    return config["scenarios"][wildcards.scenario]["prompts"]


def gpus(wildcards):
    """GPUs a job claims (the engine decides, e.g. vLLM's tensor_parallel_size); CPU-only jobs claim none."""
    v = config["variants"][wildcards.variant]
    return engines.gpus(v["engine"], v.get("options", {}))


def env_file(name):
    return str(Path(workflow.basedir) / "envs" / f"{name}.yaml")


def engine_env_name(wildcards):
    v = config["variants"][wildcards.variant]
    return engines.env(v["engine"], v.get("options", {}))


def artifact_env_name(wildcards):
    return artifacts.env(config["artifacts"][wildcards.artifact]["method"])


def engine_env(wildcards):
    return env_file(engine_env_name(wildcards))


def artifact_env(wildcards):
    return env_file(artifact_env_name(wildcards))


# Software envs. With --sdm conda, conda builds each rule's `conda:` env file and `python` is that env's.
# Otherwise `software_envs.backend` decides: `venv` builds the same env files as venvs in a DAG step
# (rule build_env, envs.smk) and each harness rule depends on its env's env.json; `none` runs everything
# in the driver's interpreter. Each harness rule takes `env_name` (a function of wildcards or a name).
USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
ENV_BACKEND = "conda" if USE_CONDA else config.get("software_envs", {}).get("backend", "venv")
# The driver's interpreter reaches jobs through the environment, not the jobs' params: its path differs
# between `snakemake` and `python -m snakemake` (bin/python3.11 vs bin/python), and that must not rerun jobs.
# (Not realpath: a venv's bin/python resolves to the base interpreter, which does not see the venv.)
os.environ.update(LLMBENCH_DRIVER_PYTHON=sys.executable)  # set here for the jobs, not read from the user
DRIVER_PYTHON = "$LLMBENCH_DRIVER_PYTHON"


def _env_name(env_name, wildcards):
    return env_name(wildcards) if callable(env_name) else env_name


def env_info(env_name):
    """Input function: the env.json the job's venv is complete with (nothing unless backend venv)."""
    return lambda wildcards: [f"resources/envs/{_env_name(env_name, wildcards)}/env.json"] if ENV_BACKEND == "venv" else []


def env_python(env_name):
    """Params function: the interpreter that runs the harness in the job."""
    def python(wildcards):
        if ENV_BACKEND == "venv":
            return f"resources/envs/{_env_name(env_name, wildcards)}/bin/python"
        return "python" if ENV_BACKEND == "conda" else DRIVER_PYTHON

    return python


def env_hash(env_name):
    """Params function: the requirements hash of the job's env file, exported as LLMBENCH_ENV_HASH (rows
    record it as env_hash); empty when the driver's interpreter runs the job."""
    return lambda wildcards: "" if ENV_BACKEND == "none" else envs.requirements_hash(env_file(_env_name(env_name, wildcards)))


# --- quality (rule quality in quality.smk) ---


def scoring_variant(model, artifact):
    """The first variant that benchmarks this artifact with an engine that can score (teacher forced)."""
    for m, a, v, _ in jobs():
        if (m, a) == (model, artifact) and hasattr(engines.adapter_class(config["variants"][v]["engine"]), "score"):
            return v
    return None


def quality_files():
    """One quality file per (model, artifact) of a real (not synthetic) model that some engine can score."""
    if "quality" not in config:
        return []
    pairs = dict.fromkeys((m, a) for m, a, _, _ in jobs())
    return [
        f"results/quality/{m}/{a}.parquet"
        for m, a in pairs
        if not config["models"][m]["source"].startswith("synthetic:") and scoring_variant(m, a)
    ]


def quality_reference(wildcards):
    ref = config["quality"]["reference_artifact"]
    return [] if wildcards.artifact == ref else [f"results/quality/{wildcards.model}/{ref}.parquet"]


def quality_variant_env(wildcards):
    v = config["variants"][scoring_variant(wildcards.model, wildcards.artifact)]
    return engines.env(v["engine"], v.get("options", {}))


def quality_spec(wildcards):
    v = scoring_variant(wildcards.model, wildcards.artifact)
    ref = quality_reference(wildcards)
    return quoted(
        {
            "model": wildcards.model,
            "artifact": wildcards.artifact,
            "artifact_dir": f"resources/artifacts/{wildcards.model}/{wildcards.artifact}",
            "variant_name": v,
            "variant": {**config["variants"][v], "options": llmbench_config.resolved_options(config, v)},
            "quality": config["quality"],
            "reference_quality": ref[0] if ref else None,
        }
    )


def stale_directories():
    """Model/artifact directories that exist but no longer match their manifest (quick stat check, then
    sha256 of the files whose size or mtime changed). Checked before any job: a stale artifact is never
    measured, and never silently rebuilt from under a result either."""
    dirs = {f"resources/models/{m}" for m, _, _, _ in jobs()}
    dirs |= {f"resources/artifacts/{m}/{a}" for m, a, _, _ in jobs()}
    found = {}
    for d in sorted(dirs):
        if Path(d).exists():
            problems = manifest.problems(Path(d), quick=True)
            if problems:
                found[d] = problems
    return found


def forced_on_command_line():
    """(--forceall given, paths/rules given to --forcerun/-R). Read from the command line because
    Snakemake's DAG settings are not available yet while the Snakefile is parsed."""
    forceall, forced, collecting = False, set(), False
    for arg in sys.argv[1:]:
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


# Directories the user asked to rebuild (--forcerun DIR, or --forceall) are not an error: they get rebuilt.
_forceall, _forced = forced_on_command_line()
_stale = {} if _forceall else {d: p for d, p in stale_directories().items() if d not in _forced}
if _stale:
    lines = [f"{d}:\n    - " + "\n    - ".join(p) for d, p in _stale.items()]
    raise WorkflowError(
        "these directories no longer match their manifest.json, so nothing built from them will be measured:\n  "
        + "\n  ".join(lines)
        + "\nRebuild them, and everything measured from them, by adding to the same command: --forcerun "
        + " ".join(_stale)
    )
