"""examples/gpu-bundle.py round-trips a wheelhouse (made here by `llmbench wheelhouse`): split into parts ->
join into another folder (every part checked) -> install the wheels with no index into a --target dir, as on
the GPU machine; a corrupt or missing part is named by join."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from llmbench.planning import wheelhouse

SCRIPT = REPO / "examples/gpu-bundle.py"
UNREACHABLE = "http://127.0.0.1:9/simple"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def _closed_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL")}
    env.update(PIP_INDEX_URL=UNREACHABLE, UV_INDEX_URL=UNREACHABLE, PIP_CONFIG_FILE=os.devnull)
    return env


def _bundle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=_closed_env(), timeout=300)


@pytest.mark.slow
def test_a_wheelhouse_round_trips_through_the_bundle_script(tmp_path):
    env = tmp_path / "small.yaml"
    env.write_text("dependencies:\n  - python=%s\n  - pip:\n      - python-dateutil==2.9.0.post0\n"
                   "      - tabulate==0.9.0\n" % PY)
    manifest = wheelhouse.make(env, tmp_path / "bundle" / "wh", PY, wheelhouse.this_platform(), log=lambda m: None)
    total = manifest["total_bytes"]

    parts = tmp_path / "parts"
    part_mb = round(total / 3 / 1e6, 3)  # at least three parts
    split = _bundle("split", tmp_path / "bundle", parts, "--part-mb", part_mb)
    assert split.returncode == 0, split.stderr
    names = sorted(p.name for p in parts.glob("part*"))
    assert len(names) >= 3 and all(p.stat().st_size <= part_mb * 1e6 for p in parts.glob("part*"))

    joined = tmp_path / "joined"
    out = _bundle("join", parts, joined)
    assert out.returncode == 0, out.stderr
    for w in manifest["wheels"]:  # every wheel back, byte for byte, as wheelhouse.json recorded it
        assert wheelhouse._sha256(joined / "wh" / w["file"]) == w["sha256"], w["file"]
    assert json.loads((joined / "wh" / wheelhouse.MANIFEST).read_text()) == manifest

    site = tmp_path / "site"
    inst = _bundle("install", joined / "wh", site)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    code = "import dateutil, six, tabulate; print(dateutil.__file__, tabulate.__version__)"
    ran = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert ran[0].startswith(str(site)) and ran[1] == "0.9.0"

    # a part that went missing or arrived damaged is named, and nothing is installed from it
    data = (parts / names[1]).read_bytes()
    (parts / names[1]).write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    (parts / names[-1]).unlink()
    bad = _bundle("join", parts, tmp_path / "again")
    assert bad.returncode != 0
    assert f"{names[1]}: sha256 mismatch" in bad.stderr and f"{names[-1]}: missing" in bad.stderr
