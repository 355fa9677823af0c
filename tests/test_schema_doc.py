"""The table schemas are the stable interface for analyses: docs and versions must follow changes."""

import hashlib

import pytest

from conftest import REPO
from llmbench.job import rows

# Bump together with the table's version in rows.py: (version, sha256 of its column list). A column change
# without a version bump fails here; a version bump without regenerating docs/table-schema.md fails below.
PINNED = {
    "requests": (3, "61e2de6d562e3a3f91cf05b9ce5a157834e18323ab15ba22a383ee2cd23067f6"),
    "latency": (2, "2549ba91390e2fa3874d81650f6fc935e86a590fe9938a48204425d4c091ec3e"),
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
