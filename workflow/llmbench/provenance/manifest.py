"""Manifests: what made a directory, from what, with which versions, and the hash of every file.

Every model and artifact directory carries ``manifest.json``. Consumers call :func:`verify` before
using a directory, so a file edited or deleted after the build is never measured (seed 003's trap).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# Files that are not content: the manifest itself and Snakemake's marker in directory outputs.
IGNORED = {MANIFEST, ".snakemake_timestamp"}
SELF_HASH = "manifest_sha256"  # the manifest's field holding the hash of its other fields
_CHUNK = 1 << 20


class StaleArtifactError(RuntimeError):
    """A directory's files no longer match its manifest."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_table(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256, size and mtime of every file below ``directory`` except the manifest itself."""
    table = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel in IGNORED:
            continue
        st = path.stat()
        table[rel] = {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return table


def content_hash(files: dict[str, dict[str, Any]]) -> str:
    """One hash for a directory: over file names and their sha256 (not mtimes)."""
    return sha256_json({name: meta["sha256"] for name, meta in files.items()})


def self_hash(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest's own content, every field but ``manifest_sha256`` (which records it): an edit of
    ``manifest.json`` after the build (its status, params, hashes) no longer matches."""
    return sha256_json({k: v for k, v in manifest.items() if k != SELF_HASH})


def write(directory: Path, kind: str, **fields: Any) -> dict[str, Any]:
    """Hash every file in ``directory`` and write its manifest (atomically), with the hash of its own
    content. Returns the manifest as written (and as :func:`read` returns it)."""
    directory = Path(directory)
    files = file_table(directory)
    manifest = {
        "kind": kind,
        **fields,
        "files": files,
        "total_bytes": sum(f["size"] for f in files.values()),
        "content_hash": content_hash(files),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    manifest = json.loads(json.dumps(manifest, default=str))  # hashed as it will be read back
    manifest[SELF_HASH] = self_hash(manifest)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, directory / MANIFEST)
    return manifest


def read(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise StaleArtifactError(f"{directory}: no {MANIFEST}; it was not built by llmbench or the build did not finish")
    return json.loads(path.read_text())


def problems(directory: Path, quick: bool = False) -> list[str]:
    """What differs between ``directory`` and its manifest (empty list: it matches).

    ``quick`` trusts a file whose size and mtime are unchanged and hashes only the others; that is what
    the planning-time check uses. The full check hashes every file.
    """
    directory = Path(directory)
    try:
        manifest = read(directory)
    except StaleArtifactError as e:
        return [str(e)]
    found = _manifest_problems(manifest)
    recorded = manifest["files"]
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} - IGNORED
    for name in sorted(set(recorded) - present):
        found.append(f"{name}: deleted")
    for name in sorted(present - set(recorded)):
        found.append(f"{name}: not in the manifest (added after the build)")
    for name in sorted(set(recorded) & present):
        meta, st = recorded[name], (directory / name).stat()
        if st.st_size != meta["size"]:
            found.append(f"{name}: size {st.st_size} != {meta['size']} in the manifest")
            continue
        if quick and st.st_mtime_ns == meta.get("mtime_ns"):
            continue
        actual = sha256_file(directory / name)
        if actual != meta["sha256"]:
            found.append(f"{name}: sha256 {actual[:12]}… != {meta['sha256'][:12]}… in the manifest")
    return found


def _manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """The manifest's own content against its recorded hash (a missing hash is a problem too: removing the
    field must not be a way to edit a manifest unnoticed)."""
    recorded = manifest.get(SELF_HASH)
    if recorded is None:
        return [f"{MANIFEST}: no {SELF_HASH} (written by an llmbench that did not hash manifests, or the field "
                "was removed): its content cannot be checked"]
    actual = self_hash(manifest)
    if actual != recorded:
        return [f"{MANIFEST}: edited after the build (its content hashes to {actual[:12]}…, "
                f"{SELF_HASH} says {str(recorded)[:12]}…)"]
    return []


def verify(directory: Path, quick: bool = False) -> dict[str, Any]:
    """Raise :class:`StaleArtifactError` naming every changed file; return the manifest if all match."""
    found = problems(directory, quick=quick)
    if found:
        raise StaleArtifactError(
            f"{directory} no longer matches its manifest, so it will not be measured:\n  - "
            + "\n  - ".join(found)
            + f"\nRebuild it and everything measured from it: the same snakemake command with --forcerun {directory}"
        )
    return read(directory)
