"""Manifests catch any change to a built directory (the stale-cache trap of seed 003)."""

import json
import os

import pytest

from llmbench.provenance import manifest


@pytest.fixture
def built(tmp_path):
    d = tmp_path / "art"
    (d / "sub").mkdir(parents=True)
    (d / "weights.bin").write_bytes(b"\x00" * 1000)
    (d / "sub" / "config.json").write_text("{}")
    manifest.write(d, "artifact", method="test")
    return d


def test_intact_directory_verifies(built):
    m = manifest.verify(built)
    assert m["kind"] == "artifact" and set(m["files"]) == {"weights.bin", "sub/config.json"}
    assert m["total_bytes"] == 1002
    assert manifest.problems(built) == [] and manifest.problems(built, quick=True) == []


def test_content_hash_ignores_mtime_and_snakemake_marker(built):
    before = manifest.read(built)["content_hash"]
    os.utime(built / "weights.bin", ns=(1, 1))
    (built / ".snakemake_timestamp").write_text("")
    assert manifest.problems(built) == []
    assert manifest.write(built, "artifact", method="test")["content_hash"] == before


def test_same_size_edit_is_caught_even_by_the_quick_check(built):
    (built / "weights.bin").write_bytes(b"\x01" + b"\x00" * 999)
    for quick in (False, True):
        found = manifest.problems(built, quick=quick)
        assert len(found) == 1 and found[0].startswith("weights.bin: sha256")


def test_deleted_and_added_files_are_named(built):
    (built / "sub" / "config.json").unlink()
    (built / "extra.txt").write_text("x")
    found = manifest.problems(built, quick=True)
    assert "sub/config.json: deleted" in found
    assert any(f.startswith("extra.txt: not in the manifest") for f in found)
    with pytest.raises(manifest.StaleArtifactError, match="--forcerun"):
        manifest.verify(built)


def test_directory_without_manifest_is_stale(tmp_path):
    assert "no manifest.json" in manifest.problems(tmp_path)[0]


def test_manifest_records_the_hash_of_its_own_content(built):
    m = manifest.read(built)
    assert m["manifest_sha256"] == manifest.self_hash(m) and len(m["manifest_sha256"]) == 64


@pytest.mark.parametrize("edit", [
    lambda m: m.update(status="verified"),                 # a field added or changed: e.g. an unverified build
    lambda m: m.update(method="other"),                    # made to look verified, or its params changed
    lambda m: m["files"]["weights.bin"].update(sha256="0" * 64),
    lambda m: m.pop("manifest_sha256"),                    # removing the hash is no way around it
], ids=["status", "params", "file-hash", "hash-removed"])
def test_an_edited_manifest_fails_verification(built, edit):
    path = built / "manifest.json"
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m, indent=2))
    for quick in (False, True):
        found = manifest.problems(built, quick=quick)
        assert found and found[0].startswith("manifest.json: "), found
    with pytest.raises(manifest.StaleArtifactError, match="manifest.json: "):
        manifest.verify(built)
