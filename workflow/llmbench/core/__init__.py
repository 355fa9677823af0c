"""The ground floor: the vocabulary every other part of llmbench shares, importing nothing else of llmbench.

options.py (Option, resolve), registry.py (name -> engine/method module, built-ins and plug-ins), engine.py (the
engine contract: Engine and its hooks, Loaded, Generation, Placement, the contract test's cases), server.py
(ServerCommand, RemoteEndpoint), schema.py (Column, Table, every table's schema), hardware.py (datasheet facts),
roofline.py (decode bytes, KV bytes, limits, the bandwidth probe), memory.py and energy.py (probes),
interference.py (the NOISY threshold and verdict), corpus.py (the packaged quality / calibration text), prompts.py
(prompt files). docs/architecture.md draws the floors;
tests/test_floors.py holds them.
"""
