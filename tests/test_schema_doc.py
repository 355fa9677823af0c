"""The per-request row schema is the stable interface for analyses: docs and version must follow changes."""

import hashlib

from conftest import REPO
from llmbench.job import rows

# Bump together with rows.SCHEMA_VERSION: (version, sha256 of the column list). A column change without a
# version bump fails here; a version bump without regenerating docs/table-schema.md fails below.
PINNED = (1, "e5c14ceb2d8bbbedaa416b96e962b41791fe4b5258339aa98b8fcb03e0115efa")


def columns_fingerprint() -> str:
    text = "\n".join(f"{c.name}:{c.type}:{c.unit}:{c.meaning}" for c in rows.COLUMNS)
    return hashlib.sha256(text.encode()).hexdigest()


def test_schema_changes_bump_the_version():
    version, fingerprint = PINNED
    assert (rows.SCHEMA_VERSION, columns_fingerprint()) == (version, fingerprint), (
        "the row columns changed: bump rows.SCHEMA_VERSION, update PINNED here, and regenerate "
        "docs/table-schema.md with `python -m llmbench schema-doc --out docs/table-schema.md`")


def test_docs_match_the_schema():
    assert (REPO / "docs/table-schema.md").read_text() == rows.markdown_doc(), (
        "docs/table-schema.md is out of date: `python -m llmbench schema-doc --out docs/table-schema.md`")


def test_every_column_is_documented():
    assert all(c.meaning for c in rows.COLUMNS)
    assert len({c.name for c in rows.COLUMNS}) == len(rows.COLUMNS)
