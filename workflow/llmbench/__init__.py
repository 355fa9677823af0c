"""llmbench: the engine-independent harness of the llmbench Snakemake workflow.

The core (manifests, rows, scenarios, tables) imports no engine library; each engine adapter in
``llmbench.engines`` imports its own library lazily, so the core runs in every engine's env.
"""

__version__ = "0.1.0"
