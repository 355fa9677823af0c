"""A small, fixed, license-clean text corpus: the help topics that ship with CPython itself.

Source: ``pydoc_data.topics`` (CPython's ``Lib/pydoc_data/topics.py``, the text behind ``help("assert")``;
Python Software Foundation License). It needs no network and no hub, and is the same on every machine with
the same Python release. CPython regenerates that file for its releases, so another Python version (even
another patch release) may give other text: :func:`describe` records the Python version and the hashes, so a
manifest says exactly which text was used.

Topics overlap (many repeat sections of others), so each paragraph (text between blank lines) is kept only at
its first occurrence in topic-name order; topics left with no new paragraph are dropped. Then every 5th
remaining topic (index 0, 5, 10, ...) is held out for perplexity and the others are calibration data: the
two parts share no topic and no paragraph.
"""

from __future__ import annotations

import hashlib
import platform
import re
from functools import cache

HELDOUT_EVERY = 5
SOURCE = "CPython Lib/pydoc_data/topics.py (pydoc_data.topics), PSF License"


@cache
def _split() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    from pydoc_data.topics import topics

    # Topics overlap (one topic's text often contains another's sections): keep each paragraph only at its
    # first occurrence, in topic-name order, so no paragraph is in both parts.
    seen: set[str] = set()
    docs: list[tuple[str, str]] = []
    for name in sorted(topics):
        paras = [p.strip() for p in re.split(r"\n[ \t]*\n", topics[name].replace("\r\n", "\n"))]
        new = [p for p in paras if p and p not in seen]
        seen.update(new)
        if new:
            docs.append((name, "\n\n".join(new)))
    held = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY == 0]
    calib = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY != 0]
    return (tuple(t for _, t in calib), tuple(n for n, _ in calib),
            tuple(t for _, t in held), tuple(n for n, _ in held))


def calibration_texts() -> list[str]:
    """The calibration documents, one per help topic, in a fixed order (topic name)."""
    return list(_split()[0])


def calibration_text() -> str:
    """All calibration documents as one string (documents separated by a blank line)."""
    return "\n\n".join(_split()[0])


def heldout_text() -> str:
    """The held-out documents as one string (documents separated by a blank line); none is in calibration."""
    return "\n\n".join(_split()[2])


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def calibration_sha256() -> str:
    """sha256 of :func:`calibration_text` (UTF-8); the documents' order and separators are part of it."""
    return _sha256(calibration_text())


def heldout_sha256() -> str:
    """sha256 of :func:`heldout_text` (UTF-8)."""
    return _sha256(heldout_text())


def describe() -> dict:
    """What a manifest records about the corpus: source, Python version, split rule, sizes and hashes."""
    calib, calib_names, held, held_names = _split()
    return {
        "source": SOURCE,
        "python": platform.python_version(),
        "split": (f"topics sorted by name, paragraphs deduplicated (first occurrence kept); topic index % "
                  f"{HELDOUT_EVERY} == 0 held out, the rest calibration"),
        "hash": "sha256 of the UTF-8 text, documents joined by a blank line (depends on the Python release)",
        "calibration_sha256": calibration_sha256(),
        "calibration_documents": len(calib),
        "calibration_chars": len(calibration_text()),
        "heldout_sha256": heldout_sha256(),
        "heldout_documents": len(held),
        "heldout_chars": len(heldout_text()),
    }
