"""The table schemas are the stable interface for analyses: docs and versions must follow changes."""

import hashlib

import pytest

from conftest import REPO
from llmbench.job import rows

# Bump together with the table's version in rows.py: (version, sha256 of its column list). A column change
# without a version bump fails here; a version bump without regenerating docs/table-schema.md fails below.
PINNED = {
    "requests": (3, "2e165ada67ff31e17a3c5d7ae11f8852ade21a33d5d69d6d06a89ad8b62e4926"),
    "latency": (1, "c1f03f844f56a719c4aa64d52663f979e88fd39ddff33d7fef62544e69206357"),
    "quality": (1, "f17b03ab0c10e39655983a36b2c268435f655ea8d8e2c24aa9e16f3da95e137c"),
}


def columns_fingerprint(table: rows.Table) -> str:
    text = "\n".join(f"{c.name}:{c.type}:{c.unit}:{c.meaning}" for c in table.columns)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("table", rows.TABLES, ids=lambda t: t.name)
def test_schema_changes_bump_the_version(table):
    assert (table.version, columns_fingerprint(table)) == PINNED[table.name], (
        f"the {table.name} columns changed: bump its version in rows.py, update PINNED here, and regenerate "
        "docs/table-schema.md with `python -m llmbench schema-doc --out docs/table-schema.md`")


def test_versions_are_written_into_the_parquet_metadata():
    for table in rows.TABLES:
        assert table.schema.metadata[b"llmbench_schema_version"] == str(table.version).encode()
    assert rows.SCHEMA.metadata[b"llmbench_schema_version"] == str(rows.SCHEMA_VERSION).encode()


def test_docs_match_the_schema():
    assert (REPO / "docs/table-schema.md").read_text() == rows.markdown_doc(), (
        "docs/table-schema.md is out of date: `python -m llmbench schema-doc --out docs/table-schema.md`")


@pytest.mark.parametrize("table", rows.TABLES, ids=lambda t: t.name)
def test_every_column_is_documented(table):
    assert all(c.meaning for c in table.columns)
    assert len({c.name for c in table.columns}) == len(table.columns)
