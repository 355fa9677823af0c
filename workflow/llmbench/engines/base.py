"""The engine contract's old place, kept for plug-ins (entry points) written against it: it lives in
``llmbench.core.engine`` now, and llmbench's own modules import it from there (tests/test_floors.py)."""

from llmbench.core.engine import (  # noqa: F401
    ContractArtifact,
    ContractCase,
    ContractFP32,
    Engine,
    EngineUnavailable,
    Generation,
    HostPeakMemory,
    Loaded,
    METHOD_HOOKS,
    MODULE_HOOKS,
    Placement,
    REFERENCE,
    check_method,
    device_missing,
    has_hook,
    misspelt_hooks,
    score_from_log_probs,
)
