"""One benchmark job: load, run a scenario, make rows (the harness core; imports no engine library)."""
